"""Progressive delivery: a challenger bundle served beside the champion (serve.rollout).

- shadow: the champion answers every request; the challenger scores the same rows after the
  response is on its way (a task on the event loop, never awaited by the request), and its
  predictions go to a log of their own (`<prediction_log_dir>/shadow/`), so monitoring and
  labels see only what clients were answered, while `compare` joins the two by prediction id.
- canary: the challenger answers `serve.challenger_share` of routing keys; the rest get the
  champion. A key is the client's X-Routing-Key (a user or session id: sticky), else the
  request id (so each request is drawn anew).
- ab: the same split, meant to stay fixed while the arms are compared; each logged record
  names its arm (`role`) for the analysis.

A key's draw is a hash of the key and the challenger's version, so a key keeps its side for
as long as the same challenger serves, and a new challenger draws afresh.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from ..bundle import Champion, ModelNotReadyError, load_champion
from ..monitoring.records import SHADOW_LOG_FOLDER
from ..settings import RolloutChoice, Settings
from .batching import MicroBatcher
from .prediction_log import PredictionLog, Retention

logger = logging.getLogger(__name__)

Role: TypeAlias = Literal["champion", "challenger", "shadow"]
ROUTING_KEY_HEADER = "x-routing-key"


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
class Rollout:
    """The challenger, how much traffic it gets, and its shadow work in flight."""

    mode: RolloutChoice
    share: float
    challenger: Champion
    batcher: MicroBatcher
    shadow_log: PredictionLog | None
    _in_flight: set[asyncio.Task[None]] = field(default_factory=set)

    def answers(self, key: str) -> bool:
        """Whether the challenger answers a request with routing `key`."""
        return self.mode != "shadow" and draw(key, self.challenger.version) < self.share

    def in_background(self, work: Any) -> None:
        """Run `work` (a coroutine) off the response path; keep it referenced until done."""
        task = asyncio.get_running_loop().create_task(work)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    def start(self) -> None:
        """Start the challenger's batcher and the shadow log (from the running event loop)."""
        self.batcher.start()
        if self.shadow_log is not None:
            self.shadow_log.start()

    async def stop(self) -> None:
        """Finish the shadow work in flight, then stop the batcher and flush the shadow log."""
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self.batcher.stop()
        if self.shadow_log is not None:
            self.shadow_log.stop()


def load_rollout(
    settings: Settings, champion: Champion | None, on_drop: Callable[[str, int], None]
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
    shadow_log = None
    if serve.rollout == "shadow":
        shadow_log = PredictionLog(
            serve.prediction_log_dir / SHADOW_LOG_FOLDER,
            serve.prediction_log_queue,
            Retention.of(serve),
            on_drop=lambda reason, count: on_drop(f"shadow_{reason}", count),
        )
    batcher = MicroBatcher(challenger, serve.max_batch_rows)
    rollout = Rollout(serve.rollout, serve.challenger_share, challenger, batcher, shadow_log)
    return rollout, ""
