"""Progressive delivery: a challenger bundle served beside the champion (serve.rollout).

- shadow: the champion answers every request; the challenger scores the same rows after the
  response is on its way, and its predictions go to a log of their own
  (`<prediction_log_dir>/shadow/`), so monitoring and labels see only what clients were
  answered, while `compare` joins the two by prediction id. `serve.shadow_share` of the
  requests are scored (all by default). Their rows queue up and are scored together every
  `SHADOW_INTERVAL_SECONDS` (one model call and one log write for many requests: a call
  costs about the same for one row as for twenty); rows beyond a backlog of
  `SHADOW_BACKLOG_BATCHES` model calls are dropped and counted, so a slow challenger holds
  bounded memory.
- canary: the challenger answers `serve.challenger_share` of routing keys; the rest get the
  champion. A key is the client's X-Routing-Key (a user or session id: sticky), else the
  request id (so each request is drawn anew).
- ab: the same split, meant to stay fixed while the arms are compared; each logged record
  names its arm (`role`) for the analysis.

A key's draw is a hash of the key and the challenger's version, so a key keeps its side for
as long as the same challenger serves, and a new challenger draws afresh.

A running rollout ends by itself once its bundle leaves `registry.challenger_dir`
(`challenger --clear`, the canary's rollback): the champion then answers everything, no
restart needed. A new challenger is served after a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bundle import Champion, ModelNotReadyError, load_champion
from ..monitoring.records import SHADOW_LOG_FOLDER
from ..settings import RolloutChoice, Settings
from ..task import Prediction
from .answered import log_entries, record_telemetry
from .batching import MicroBatcher
from .prediction_log import PredictionLog, Retention
from .telemetry import Telemetry

logger = logging.getLogger(__name__)

ROUTING_KEY_HEADER = "x-routing-key"
# How often the shadow challenger scores the rows queued meanwhile (bench-rollout: the cost).
SHADOW_INTERVAL_SECONDS = 0.02
# Rows the shadow may hold back, in model calls of serve.max_batch_rows; more are dropped.
SHADOW_BACKLOG_BATCHES = 10


def draw(key: str, salt: str) -> float:
    """A key's place in [0, 1): uniform over keys, the same for the same key and salt."""
    digest = hashlib.blake2b(f"{salt}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _mismatch(champion: Champion, challenger: Champion) -> str | None:
    """Why `challenger` cannot share the champion's requests; None when it can."""
    if challenger.version == champion.version:
        return f"the challenger bundle holds v{challenger.version}, the champion itself"
    if str(challenger.task) != str(champion.task):
        return f"the challenger is a {challenger.task} model, the champion a {champion.task} one"
    theirs = [(f.name, f.type) for f in challenger.contract.features]
    ours = [(f.name, f.type) for f in champion.contract.features]
    if theirs != ours:
        return "the challenger's contract names other features or types than the champion's"
    return None


@dataclass
class _ShadowWork:
    ids: tuple[str, str]  # (prediction id, request id) of the champion's answer
    rows: list[tuple[Any, ...]]
    answered: list[Prediction]


@dataclass
class ShadowScorer:
    """The challenger's shadow work: queued by requests, scored in batches off their path."""

    challenger: Champion
    log: PredictionLog
    telemetry: Telemetry
    max_rows: int  # rows per model call (serve.max_batch_rows)
    _pending: list[_ShadowWork] = field(default_factory=list)
    _pending_rows: int = 0
    _task: asyncio.Task[None] | None = None

    def submit(
        self, ids: tuple[str, str], rows: list[tuple[Any, ...]], answered: list[Prediction]
    ) -> None:
        """Queue one answered request for the challenger; a full backlog drops it, counted."""
        if self._pending_rows + len(rows) > SHADOW_BACKLOG_BATCHES * self.max_rows:
            self.telemetry.drop_log_records("shadow_backlog_full", len(rows))
            return
        self._pending.append(_ShadowWork(ids, rows, answered))
        self._pending_rows += len(rows)

    def start(self) -> None:
        """Start the shadow log and the scoring loop (from the running event loop)."""
        self.log.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="shadow-scorer")

    async def stop(self) -> None:
        """Score what is still queued (the backlog is bounded), then flush the shadow log.

        It yields between model calls and flushes from a thread: a rollout ended while the
        service runs (api/state.py) must not stall the champion's requests.
        """
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while self._pending:
            self._score_next()
            await asyncio.sleep(0)
        await asyncio.to_thread(self.log.stop)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SHADOW_INTERVAL_SECONDS)
            while self._pending:
                self._score_next()
                await asyncio.sleep(0)  # requests that arrived meanwhile go first

    def _score_next(self) -> None:
        """Score the oldest queued requests, up to `max_rows` rows, in one model call."""
        size, taken = 0, 0
        for work in self._pending:
            if taken and size + len(work.rows) > self.max_rows:
                break
            size, taken = size + len(work.rows), taken + 1
        batch, self._pending = self._pending[:taken], self._pending[taken:]
        self._pending_rows -= size
        try:
            self._score(batch)
        except Exception:  # the challenger's failure must not reach the champion's clients
            logger.exception("shadow scoring by v%s failed", self.challenger.version)
            self.telemetry.shadow_failures.inc()

    def _score(self, batch: list[_ShadowWork]) -> None:
        predictions = self.challenger.predict([row for work in batch for row in work.rows])
        record_telemetry(self.telemetry, self.challenger, "shadow", predictions)
        entries: list[dict[str, Any]] = []
        start = 0
        for work in batch:
            theirs = predictions[start : start + len(work.rows)]
            start += len(work.rows)
            self._compare(work.answered, theirs)
            answers = [self.challenger.task.answer(item) for item in theirs]
            entries += log_entries(self.challenger, "shadow", work.ids, work.rows, answers)
        self.log.append(entries)

    def _compare(self, answered: list[Prediction], theirs: list[Prediction]) -> None:
        telemetry = self.telemetry
        for ours, mine in zip(answered, theirs, strict=True):
            if ours.probabilities is None:
                telemetry.shadow_differences.observe(abs(float(mine.value) - float(ours.value)))
            elif str(ours.value) != str(mine.value):
                telemetry.shadow_disagreements.labels(self.challenger.version).inc()


@dataclass
class Rollout:
    """The challenger, how much traffic it answers, or its shadow scorer."""

    mode: RolloutChoice
    share: float
    challenger: Champion
    batcher: MicroBatcher  # canary and ab: the challenger's answers
    shadow_scorer: ShadowScorer | None  # shadow mode
    shadow_share: float  # of requests, drawn by prediction id

    def still_exported(self, folder: Path) -> bool:
        """Whether `folder` still holds this challenger (`challenger --clear` removes it).

        Only a missing bundle or another version says no: a file unreadable for a moment (a
        re-export under way) is checked again next time.
        """
        try:
            metadata = json.loads((folder / "metadata.json").read_bytes())
        except FileNotFoundError:
            return False
        except (OSError, ValueError):
            return True
        if not isinstance(metadata, dict):
            return True
        return str(metadata.get("version")) == self.challenger.version

    def answers(self, key: str) -> bool:
        """Whether the challenger answers a request with routing `key`."""
        return self.mode != "shadow" and draw(key, self.challenger.version) < self.share

    def shadow(
        self, ids: tuple[str, str], rows: list[tuple[Any, ...]], answered: list[Prediction]
    ) -> None:
        """Queue an answered request for the shadow challenger (shadow mode only)."""
        if self.shadow_scorer is None:
            return
        if self.shadow_share >= 1 or draw(ids[0], "shadow") < self.shadow_share:
            self.shadow_scorer.submit(ids, rows, answered)

    def start(self) -> None:
        """Start the challenger's batcher or shadow scorer (from the running event loop)."""
        if self.shadow_scorer is not None:
            self.shadow_scorer.start()
        else:
            self.batcher.start()

    async def stop(self) -> None:
        """Finish the shadow work queued, stop the batcher, flush the shadow log."""
        if self.shadow_scorer is not None:
            await self.shadow_scorer.stop()
        await self.batcher.stop()


def load_rollout(
    settings: Settings, champion: Champion | None, telemetry: Telemetry
) -> tuple[Rollout | None, str]:
    """The configured rollout, or None and why there is none (the champion then answers all)."""
    serve = settings.serve
    if serve.rollout == "off":
        return None, "serve.rollout is off"
    if champion is None:
        return None, "no champion is serving"
    folder = settings.registry.challenger_dir
    try:
        challenger = load_champion(folder, settings.task, serve.runtime)
    except ModelNotReadyError as error:
        return None, f"no servable challenger in {folder} ({error}); fix: `challenger VERSION`"
    problem = _mismatch(champion, challenger)
    if problem is not None:
        return None, problem
    scorer = None
    if serve.rollout == "shadow":
        log = PredictionLog(
            serve.prediction_log_dir / SHADOW_LOG_FOLDER,
            serve.prediction_log_queue,
            Retention.of(serve),
            on_drop=lambda reason, count: telemetry.drop_log_records(f"shadow_{reason}", count),
        )
        scorer = ShadowScorer(challenger, log, telemetry, serve.max_batch_rows)
    batcher = MicroBatcher(challenger, serve.max_batch_rows)
    share = serve.challenger_share
    return Rollout(serve.rollout, share, challenger, batcher, scorer, serve.shadow_share), ""
