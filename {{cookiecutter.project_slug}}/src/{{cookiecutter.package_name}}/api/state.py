"""The running service's state: the verified champion or why there is none, and the rest."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..bundle import Champion, ModelNotReadyError, load_champion
from ..contract import load_contract
from ..errors import ProjectError
from ..settings import Settings
from .batching import MicroBatcher
from .prediction_log import PredictionLog, Retention
from .schemas import RequestSchemas
from .telemetry import Telemetry

logger = logging.getLogger(__name__)


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
            Retention(
                settings.serve.prediction_log_file_bytes,
                settings.serve.prediction_log_keep_bytes,
                settings.serve.prediction_log_keep_days,
            ),
            on_drop=telemetry.drop_log_records,
        )
        return cls(settings, telemetry, champion, reason, schemas, prediction_log)

    @property
    def model_version(self) -> str:
        """The served version, or "none" while not ready."""
        return self.champion.version if self.champion is not None else "none"
