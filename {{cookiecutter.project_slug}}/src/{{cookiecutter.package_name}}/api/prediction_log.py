"""The prediction log: every answered record, appended as JSON lines off the request path.

Requests only put entries on a bounded queue; one thread writes them in batches to
`<dir>/predictions-<UTC time begun>.jsonl`, flushed and fsynced, so monitoring reads what was
served. A full queue or a failing disk costs log lines (counted in /metrics), never a
prediction. Shutdown drains the queue before the process exits.

A file is rotated at each UTC day and at `Retention.file_bytes`; the oldest files are removed
past `Retention.keep_days` or once the closed ones hold over `Retention.keep_bytes`, so the log
fits the volume it is written to (k8s/base/deployment.yaml's sizeLimit; a test checks).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ..monitoring.records import LOG_PATTERN, log_file_name

if TYPE_CHECKING:
    from ..settings import ServeSettings

logger = logging.getLogger(__name__)

_STOP = object()


@dataclass(frozen=True)
class Retention:
    """When a log file is rotated and when old ones are removed (`serve.prediction_log_*`)."""

    file_bytes: int
    keep_bytes: int
    keep_days: float

    @classmethod
    def of(cls, serve: ServeSettings) -> Retention:
        """The retention `serve.prediction_log_*` asks for."""
        return cls(
            serve.prediction_log_file_bytes,
            serve.prediction_log_keep_bytes,
            serve.prediction_log_keep_days,
        )


class PredictionLog:
    """A bounded queue of prediction records and the thread that appends them to disk."""

    def __init__(
        self,
        directory: Path,
        capacity: int,
        retention: Retention,
        on_drop: Callable[[str, int], None] = lambda reason, count: None,
    ) -> None:
        self.directory = directory
        self.retention = retention
        self._current: Path | None = None  # only the writer thread touches files
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=capacity)
        self._on_drop = on_drop
        self._thread = threading.Thread(target=self._write_forever, name="prediction-log")

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write everything queued so far, then stop the writer."""
        self._queue.put(_STOP)  # blocks while full: the writer is draining it
        self._thread.join(timeout)

    def append(self, records: list[dict[str, Any]]) -> None:
        """Queue one request's records; when the queue is full they are dropped and counted."""
        try:
            self._queue.put_nowait(records)
        except queue.Full:
            self._on_drop("queue_full", len(records))

    def path_for(self, moment: datetime, size: int) -> Path:
        """The file that `size` more bytes written at `moment` go to.

        A new one each UTC day and when `size` would take the current one past `file_bytes`;
        old files are pruned then.
        """
        current = self._current
        if (
            current is None
            or not current.name.startswith(f"predictions-{moment:%Y-%m-%d}T")
            or (current.exists() and current.stat().st_size + size > self.retention.file_bytes)
        ):
            self._current = current = self.directory / log_file_name(moment)
            self.prune(moment)
        return current

    def prune(self, moment: datetime) -> list[Path]:
        """Remove the oldest files past the retention limits (never the current one)."""
        files = [path for path in sorted(self.directory.glob(LOG_PATTERN)) if path != self._current]
        sizes = {path: path.stat().st_size for path in files}
        total = sum(sizes.values())
        oldest_kept = (moment - timedelta(days=self.retention.keep_days)).timestamp()
        removed = []
        for path in files:
            if total <= self.retention.keep_bytes and path.stat().st_mtime >= oldest_kept:
                break
            path.unlink(missing_ok=True)
            total -= sizes[path]
            removed.append(path)
        if removed:
            logger.info("prediction log: removed %d old files (retention)", len(removed))
        return removed

    def _write_forever(self) -> None:
        stopping = False
        while not stopping:
            pending = [self._queue.get()]
            while True:  # take everything queued meanwhile: one write for many requests
                try:
                    pending.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stopping = any(item is _STOP for item in pending)
            batches = [item for item in pending if item is not _STOP]
            if batches:
                self._write([record for batch in batches for record in batch])

    def _write(self, records: list[dict[str, Any]]) -> None:
        lines = b"".join(orjson.dumps(record) + b"\n" for record in records)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            _append_whole(self.path_for(datetime.now(UTC), len(lines)), lines)
        except OSError as error:
            logger.warning("prediction log: %d records not written: %s", len(records), error)
            self._on_drop("write_error", len(records))


def _append_whole(path: Path, data: bytes) -> None:
    """Append all of `data`, synced, or none of it.

    A full disk can accept half a write: that write is cut back off, so the log never holds a
    torn record for later lines to be glued to, and the records dropped are exactly counted.
    """
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.fstat(descriptor).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
            os.fsync(descriptor)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(descriptor, start)
            raise
    finally:
        os.close(descriptor)
