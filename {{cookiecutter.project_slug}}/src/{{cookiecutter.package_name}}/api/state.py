"""The running service's state: the verified champion or why there is none, and the rest."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..bundle import Champion, ModelNotReadyError, load_champion
from ..contract import load_contract
from ..errors import ProjectError
from ..settings import Settings
from .batching import MicroBatcher
from .prediction_log import PredictionLog, Retention
from .rollout import Rollout, load_rollout
from .schemas import RequestSchemas
from .telemetry import Telemetry

if TYPE_CHECKING:  # shap and the explainer load only when serve.explain is on
    from ..explain import Explainer

logger = logging.getLogger(__name__)
# A challenger bundle missing from this many checks in a row ends the rollout.
ROLLOUT_MISSES_TO_END = 2


@dataclass
class ServiceState:
    """Built once per process by `create_app`; routes reach it through `deps`."""

    settings: Settings
    telemetry: Telemetry
    champion: Champion | None
    not_ready_reason: str | None
    schemas: RequestSchemas | None
    prediction_log: PredictionLog
    batcher: MicroBatcher | None = field(default=None)
    # serve.explain: the champion's SHAP explainer, or why there is none (/explain says it).
    explainer: Explainer | None = field(default=None)
    explain_problem: str = "serve.explain is off"
    # serve.rollout: the challenger beside the champion, or why there is none.
    rollout: Rollout | None = field(default=None)
    rollout_problem: str = "serve.rollout is off"
    _rollout_watch: asyncio.Task[None] | None = field(default=None)

    @classmethod
    def load(cls, settings: Settings) -> ServiceState:
        """Load and verify the champion; a failure leaves the service up but not ready."""
        telemetry = Telemetry()
        champion, reason = None, None
        try:
            champion = load_champion(
                settings.registry.export_dir, settings.task, settings.serve.runtime
            )
        except ModelNotReadyError as error:
            reason = str(error)
            logger.error("model not ready: %s", reason)
        contract = champion.contract if champion else None
        if contract is None:
            try:  # the project's contract still documents the request schema
                contract = load_contract(settings.contract_path)
            except ProjectError:
                contract = None
        schemas = RequestSchemas(contract, settings.serve.max_batch_rows) if contract else None
        if champion is not None:
            name = str(champion.metadata.get("model_name"))
            telemetry.model_info.labels(name, champion.version).set(1)
            telemetry.model_ready.set(1)
        prediction_log = PredictionLog(
            settings.serve.prediction_log_dir,
            settings.serve.prediction_log_queue,
            Retention.of(settings.serve),
            on_drop=telemetry.drop_log_records,
        )
        state = cls(settings, telemetry, champion, reason, schemas, prediction_log)
        state.rollout, state.rollout_problem = load_rollout(settings, champion, telemetry)
        if state.rollout_problem and settings.serve.rollout != "off":
            logger.error(
                "serve.rollout %s is off: %s", settings.serve.rollout, state.rollout_problem
            )
        if settings.serve.explain and champion is not None:
            state.load_explainer(champion)
        return state

    def load_explainer(self, champion: Champion) -> None:
        """Build the champion's explainer; a failure leaves /explain answering 503, not the rest."""
        from ..explain import load_explainer

        try:
            explained, explainer = load_explainer(self.settings.registry.export_dir, champion.task)
        except ProjectError as error:
            self.explain_problem = str(error)
            logger.error("/explain is not available: %s", error)
            return
        if explained.version != champion.version:  # the bundle was swapped between the loads
            self.explain_problem = "the bundle changed while the service started; fix: restart it"
            return
        self.explainer = explainer

    def start(self) -> None:
        """Start the log writers and the models' batchers (from the running event loop)."""
        self.prediction_log.start()
        if self.champion is not None:
            self.batcher = MicroBatcher(self.champion, self.settings.serve.max_batch_rows)
            self.batcher.start()
        if self.rollout is not None:
            self.rollout.start()
            self._rollout_watch = asyncio.get_running_loop().create_task(self._watch_rollout())

    async def _watch_rollout(self) -> None:
        """End the rollout once its challenger bundle is gone (the canary's rollback).

        `ROLLOUT_MISSES_TO_END` checks in a row must miss it: a re-export swaps the folder in
        two renames.
        """
        folder = self.settings.registry.challenger_dir
        misses = 0
        while self.rollout is not None:
            await asyncio.sleep(self.settings.serve.rollout_check_seconds)
            misses = 0 if self.rollout.still_exported(folder) else misses + 1
            if misses < ROLLOUT_MISSES_TO_END:
                continue
            # Requests from now on see no rollout; the retired one answers what it holds.
            retired, self.rollout = self.rollout, None
            self.rollout_problem = (
                f"challenger v{retired.challenger.version} is no longer exported in {folder} "
                "(challenger --clear, or another version exported): the champion answers "
                "everything; restart to serve another challenger"
            )
            logger.warning("serve.rollout ended: %s", self.rollout_problem)
            try:
                await retired.stop()
            except Exception:  # the champion keeps serving whatever the retired one did
                logger.exception("stopping the retired rollout failed")

    async def stop(self) -> None:
        """Finish the shadow scoring, stop the batchers, flush the logs.

        Called once uvicorn has drained the requests in flight.
        """
        if self._rollout_watch is not None:
            self._rollout_watch.cancel()
            await asyncio.gather(self._rollout_watch, return_exceptions=True)
        if self.rollout is not None:
            await self.rollout.stop()
        if self.batcher is not None:
            await self.batcher.stop()
        self.prediction_log.stop()

    @property
    def model_version(self) -> str:
        """The served version, or "none" while not ready."""
        return self.champion.version if self.champion is not None else "none"
