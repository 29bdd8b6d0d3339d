"""Adaptive micro-batching: requests that arrive while the model is busy share its next call.

A scikit-learn pipeline costs about the same for one row as for a hundred: most of a call is
fixed overhead (input checks, column selection). Under concurrent load, one model call for
everything that queued up meanwhile multiplies throughput; a lone request never waits for
company, so latency at low load is unchanged.

The model runs on the event loop itself. Handing each call to a thread measured slower here:
the hop and the GIL hand-over cost more than the parsing they would let overlap.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ..bundle import Champion, Prediction


@dataclass
class _Pending:
    rows: list[tuple[Any, ...]]
    done: asyncio.Future[list[Prediction]]


@dataclass
class MicroBatcher:
    """Queue requests' rows; one task feeds them to the model in batches of up to `max_rows`."""

    champion: Champion
    max_rows: int
    _queue: asyncio.Queue[_Pending] = field(default_factory=asyncio.Queue)
    _task: asyncio.Task[None] | None = None
    # A request too big to join the last batch; it opens the next one, ahead of the queue.
    _carried: _Pending | None = None

    def start(self) -> None:
        """Begin serving the queue (call from the running event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        """Stop taking batches, then answer the requests still queued.

        At shutdown uvicorn has finished the requests in flight; a canary ended mid-flight
        (api/state.py) may still have requests waiting here, and nobody else would answer them.
        """
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while self._carried is not None or not self._queue.empty():
            first, self._carried = self._carried or self._queue.get_nowait(), None
            self._serve(self._take_batch(first))

    async def predict(self, rows: list[tuple[Any, ...]]) -> list[Prediction]:
        """The predictions for `rows`, possibly computed together with other requests' rows."""
        done: asyncio.Future[list[Prediction]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(rows, done))
        return await done

    def _take_batch(self, first: _Pending) -> list[_Pending]:
        batch, size = [first], len(first.rows)
        while not self._queue.empty():
            following = self._queue.get_nowait()
            if size + len(following.rows) > self.max_rows:
                self._carried = following
                break
            batch.append(following)
            size += len(following.rows)
        return batch

    async def _run(self) -> None:
        while True:
            # Kept in `_carried` until served: a stop() in between answers it, not loses it.
            self._carried = self._carried or await self._queue.get()
            await asyncio.sleep(0)  # let requests parsed in this loop turn join the batch
            first, self._carried = self._carried, None
            self._serve(self._take_batch(first))

    def _serve(self, batch: list[_Pending]) -> None:
        """One model call for the batch; each request gets its rows' answers (or the error)."""
        rows = [row for pending in batch for row in pending.rows]
        try:
            predictions = self.champion.predict(rows)
        except Exception as error:  # delivered to every waiting request
            for pending in batch:
                if not pending.done.done():
                    pending.done.set_exception(error)
            return
        start = 0
        for pending in batch:
            end = start + len(pending.rows)
            if not pending.done.done():  # a client may have gone away meanwhile
                pending.done.set_result(predictions[start:end])
            start = end
