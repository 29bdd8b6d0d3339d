"""The serving pieces on their own: record schema, micro-batching and the prediction log."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from {{ cookiecutter.package_name }}.api.batching import (
    MicroBatcher,
)
from {{ cookiecutter.package_name }}.api.prediction_log import (
    PredictionLog,
    Retention,
)
from {{ cookiecutter.package_name }}.api.schemas import (
    RequestSchemas,
)
from {{ cookiecutter.package_name }}.bundle import (
    Champion,
    Prediction,
)
from {{ cookiecutter.package_name }}.contract import (
    Column,
    Contract,
)
from {{ cookiecutter.package_name }}.settings import (
    Settings,
)


class CountingChampion(Champion):
    """The real champion, counting how many model calls it makes."""

    calls: list[int]

    def predict(self, rows: list[tuple[Any, ...]]) -> list[Prediction]:
        self.calls.append(len(rows))
        return super().predict(rows)


def test_concurrent_requests_share_model_calls_and_keep_their_rows(
    fitted_pipeline: Any, contract: Contract, settings: Settings, sample: pd.DataFrame
) -> None:
    champion = CountingChampion(fitted_pipeline, contract, {"version": "1"}, settings.task)
    object.__setattr__(champion, "calls", [])
    rows = list(sample[contract.feature_names].head(20).itertuples(index=False, name=None))
    direct = champion.predict(rows)
    champion.calls.clear()

    async def send_all() -> list[list[Prediction]]:
        batcher = MicroBatcher(champion, max_rows=8)
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.predict([row]) for row in rows))
        finally:
            await batcher.stop()

    answers = asyncio.run(send_all())
    assert [answer for [answer] in answers] == direct
    assert len(champion.calls) < len(rows)  # shared calls...
    assert max(champion.calls) <= 8  # ...never above the batch limit
    assert sum(champion.calls) == len(rows)


def test_stopping_a_batcher_answers_the_requests_still_waiting(
    fitted_pipeline: Any, contract: Contract, settings: Settings, sample: pd.DataFrame
) -> None:
    """A canary ended mid-flight stops the challenger's batcher with requests queued in it:
    each gets its answer, none is left waiting for ever."""
    champion = Champion(fitted_pipeline, contract, {"version": "1"}, settings.task)
    rows = list(sample[contract.feature_names].head(20).itertuples(index=False, name=None))
    direct = champion.predict(rows)

    async def stop_with_requests_waiting() -> list[list[Prediction]]:
        batcher = MicroBatcher(champion, max_rows=8)
        batcher.start()
        waiting = [asyncio.ensure_future(batcher.predict([row])) for row in rows]
        await asyncio.sleep(0)  # the requests queue up; the batcher takes its first one
        await batcher.stop()
        return await asyncio.wait_for(asyncio.gather(*waiting), timeout=5)

    answers = asyncio.run(stop_with_requests_waiting())
    assert [answer for [answer] in answers] == direct


RETENTION = Retention(file_bytes=2**20, keep_bytes=2**30, keep_days=30)


def test_a_full_log_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    dropped: list[tuple[str, int]] = []
    log = PredictionLog(tmp_path, 1, RETENTION, on_drop=lambda *drop: dropped.append(drop))
    log.append([{"row": 0}])  # the writer is not started: the queue stays full
    log.append([{"row": 1}, {"row": 2}])
    assert dropped == [("queue_full", 2)]
    log.start()
    log.stop()
    [written] = tmp_path.glob("predictions-*.jsonl")
    assert written.read_text() == '{"row":0}\n'


def test_the_log_rotates_by_size_and_day_and_keeps_what_retention_allows(tmp_path: Path) -> None:
    retention = Retention(file_bytes=1000, keep_bytes=2500, keep_days=30)
    log = PredictionLog(tmp_path, 100, retention)
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    line = 100
    written = []
    for second in range(60):  # 6,000 bytes at 100 per write
        moment = now + timedelta(seconds=second)
        path = log.path_for(moment, line)
        with path.open("ab") as stream:
            stream.write(b"x" * line)
        written.append(path)
    files = sorted(tmp_path.glob("predictions-*.jsonl"))
    assert all(path.stat().st_size <= retention.file_bytes for path in files)
    closed = [path for path in files if path != written[-1]]
    assert sum(path.stat().st_size for path in closed) <= retention.keep_bytes
    assert written[-1] in files  # the current file is never removed
    assert len(set(written)) == 6  # a new file per 1,000 bytes
    # A new day starts a new file; files older than keep_days go.
    stale = tmp_path / "predictions-2026-10-01T000000.jsonl"
    stale.write_bytes(b"x")
    os.utime(stale, (now.timestamp() - 31 * 86400,) * 2)
    tomorrow = log.path_for(now + timedelta(days=1), line)
    assert tomorrow.name == "predictions-2026-12-01T120000.jsonl"
    assert not stale.exists()


APPEND_ON_A_FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from {{ cookiecutter.package_name }}.api.prediction_log import _append_whole
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail (EFBIG), like ENOSPC
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
path = Path(sys.argv[1])
_append_whole(path, b"a\\n" * 300)
try:
    _append_whole(path, b"b\\n" * 300)
except OSError:
    print("refused")
"""


def test_a_write_the_disk_cannot_take_is_cut_back_off_whole(tmp_path: Path) -> None:
    # In a child process: the file-size limit stands in for a full disk without touching ours.
    log_file = tmp_path / "predictions.jsonl"
    result = subprocess.run(
        [sys.executable, "-c", APPEND_ON_A_FULL_DISK, str(log_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "refused"
    assert log_file.read_bytes() == b"a\n" * 300  # the first write whole, none of the second


def test_a_nullable_field_must_be_present_but_may_be_null() -> None:
    contract = Contract(
        name="toy",
        target=Column(name="y", type="float"),
        features=[
            Column(name="size", type="float", nullable=True),
            Column(name="colour", type="category", allowed=["red"], nullable=True),
        ],
    )
    record = RequestSchemas(contract, max_batch_rows=10).one
    assert RequestSchemas.rows([record.validate_python({"size": None, "colour": None})]) == [
        (None, None)
    ]
    with pytest.raises(ValidationError) as raised:
        record.validate_python({"size": 1.0})
    assert [(e["type"], e["loc"]) for e in raised.value.errors()] == [("missing", ("colour",))]


def test_a_category_coded_as_numbers_takes_json_numbers_but_not_booleans() -> None:
    contract = Contract(
        name="coded",
        target=Column(name="y", type="float"),
        features=[Column(name="sex", type="category", allowed=["1", "2"])],
    )
    record = RequestSchemas(contract, max_batch_rows=10).one
    for same in (2, 2.0, "2"):  # one code, however a client writes the number
        assert RequestSchemas.rows([record.validate_python({"sex": same})]) == [("2",)]
    for refused in (3, 3.0, True, 2.5, "3"):
        with pytest.raises(ValidationError) as raised:
            record.validate_python({"sex": refused})
        assert raised.value.errors()[0]["loc"] == ("sex",)


def test_rows_follow_the_contract_order_whatever_the_order_of_the_keys() -> None:
    names = ["zeta", "alpha", "mid", "beta"]  # neither sorted nor reversed
    contract = Contract(
        name="order",
        target=Column(name="y", type="float"),
        features=[Column(name=name, type="float") for name in names],
    )
    schemas = RequestSchemas(contract, max_batch_rows=10)
    values = {name: float(index) for index, name in enumerate(names)}
    for keys in (names, sorted(names), names[::-1]):
        record = schemas.one.validate_python({key: values[key] for key in keys})
        assert schemas.rows([record]) == [(0.0, 1.0, 2.0, 3.0)]
