"""Batch scoring: a CSV or Parquet file in, the champion's predictions out, in bounded memory.

The file is read in chunks. Each row is checked against the contract with the API's rules
(`row_checks`); conforming rows are scored by the champion bundle through `Champion`, the
service's own code, and the others go to a reject file with the reason, never dropped
silently. A seeded uniform sample of the scored rows (at most `monitor.window_rows`, the rows
`monitor` reads) goes to the prediction log, so monitoring and labelling work as for served
traffic. Outputs are written beside their final name and renamed when complete: a failed run
leaves no half file. Imports neither MLflow nor Great Expectations: the serving image runs it.

Sharding (Kubernetes Indexed Jobs): shard i of n scores the rows whose number is i modulo n,
so n pods split one file without coordinating, and their outputs together cover every row once.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import orjson
import pandas as pd

from .bundle import Champion
from .contract import Contract
from .errors import ProjectError, file_errors_named
from .monitoring.records import (
    MODEL_VERSION,
    PREDICTION,
    PREDICTION_ID,
    ROW,
    log_file_name,
    prediction_record,
)
from .row_checks import checked_rows
from .tabular import (
    PARQUET_SUFFIXES,
    RowSample,
    apply_contract_types,
    read_table_chunks,
    require_features,
)
from .task import Predictions

REASON = "reason"
PROBABILITY_PREFIX = "probability_"
# The log sample keeps each row's features and answers under these column groups, so a feature
# called "prediction" cannot collide with the answer.
_FEATURES, _ANSWERS = "features", "answers"
_LogRow = tuple[int, dict[str, Any], dict[str, Any]]


@dataclass(frozen=True)
class Shard:
    """Which rows this process scores: those whose number is `index` modulo `count`."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ProjectError(
                f"shard {self.index} of {self.count} does not exist; fix: pass --shards N "
                "with 0 <= index < N (JOB_COMPLETION_INDEX in an Indexed Job)"
            )


@dataclass(frozen=True)
class ScoreJob:
    """What to score and where the answers go."""

    source: Path
    output: Path
    rejects: Path
    log_dir: Path | None  # None: log nothing
    log_rows: int
    chunk_rows: int = 100_000
    shard: Shard = field(default_factory=Shard)
    keep: tuple[str, ...] = ()
    seed: int = 0
    force: bool = False


@dataclass(frozen=True)
class ScoreResult:
    """What a run scored, refused and logged."""

    rows: int
    scored: int
    rejected: int
    logged: int
    seconds: float
    model_version: str
    prediction_id: str
    log_file: Path | None

    def too_many_rejected(self, limit: float, rejects: Path) -> str | None:
        """Why the run failed its input (more than `limit` of the rows rejected); None if not.

        Both files are written either way: the reasons are in the reject file.
        """
        if not self.rows or self.rejected / self.rows <= limit:
            return None
        return (
            f"{self.rejected:,} of {self.rows:,} rows ({self.rejected / self.rows:.0%}) broke "
            f"the data contract, more than --max-rejected ({limit:g}); fix: see the reason "
            f"beside each row in {rejects} (or raise --max-rejected)"
        )


def answer_columns(predictions: Predictions) -> dict[str, Any]:
    """The prediction (and each class's probability) as output columns."""
    columns: dict[str, Any] = {PREDICTION: predictions.values}
    if predictions.probabilities is not None:
        for index, label in enumerate(predictions.classes):
            columns[f"{PROBABILITY_PREFIX}{label}"] = predictions.probabilities[:, index]
    return columns


def rejected_rows(rows: pd.DataFrame, reasons: pd.Series, contract: Contract) -> pd.DataFrame:
    """Rejected rows as the reject file holds them: row number, the columns read, the reason.

    Typed as the contract reads them: a blank turns an int column into floats when read, and
    its 7 would otherwise be written back as 7.0.
    """
    typed = apply_contract_types(rows.copy(), contract).astype(object)
    typed = typed.rename(columns=input_names(typed.columns, (ROW, REASON)))
    return typed.assign(**{REASON: reasons}).rename_axis(ROW).reset_index()


def input_names(columns: Iterable[object], taken: Iterable[str]) -> dict[object, str]:
    """New names for input columns that an output column of score's would overwrite."""
    reserved = set(taken)
    return {name: f"{name} (input)" for name in columns if str(name) in reserved}


class _Table:
    """An output table written chunk by chunk under a partial name, CSV or Parquet by suffix."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(f".{path.name}.partial")
        self._parquet = path.suffix.lower() in PARQUET_SUFFIXES
        self._writer: Any = None
        self._stream: IO[str] | None = None

    @property
    def empty(self) -> bool:
        return self._writer is None and self._stream is None

    def write(self, frame: pd.DataFrame) -> None:
        if self._parquet:
            import pyarrow as pa  # only for Parquet output
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._writer is None:
                self._writer = pq.ParquetWriter(self.partial, table.schema)
            self._writer.write_table(table.cast(self._writer.schema))
        elif self._stream is None:
            self._stream = self.partial.open("w", encoding="utf-8", newline="")
            frame.to_csv(self._stream, index=False)
        else:
            frame.to_csv(self._stream, index=False, header=False)

    def close(self, *, publish: bool) -> None:
        """Close the file; rename it into place, or remove it."""
        for handle in (self._writer, self._stream):
            if handle is not None:
                handle.close()
        if publish:
            os.replace(self.partial, self.path)
        else:
            self.partial.unlink(missing_ok=True)


def _check_paths(job: ScoreJob) -> None:
    source = job.source.resolve()
    if job.chunk_rows < 1 or job.log_rows < 0:
        raise ProjectError(
            f"--chunk-rows {job.chunk_rows} / --log-rows {job.log_rows}; fix: --chunk-rows at "
            "least 1 and --log-rows at least 0"
        )
    if job.rejects.suffix.lower() != ".csv":
        raise ProjectError(f"--rejects {job.rejects}: rejects are written as CSV; fix: name a .csv")
    if job.output.resolve() == job.rejects.resolve():
        raise ProjectError("--output and --rejects are the same file; fix: name two files")
    for path in (job.output, job.rejects):
        if path.resolve() == source:
            raise ProjectError(f"{path} is the input file; fix: write the results elsewhere")
        if path.is_dir():
            raise ProjectError(f"{path} is a folder; fix: name a file in it")
        if path.exists() and not job.force:
            raise ProjectError(f"{path} already exists; fix: pass --force to replace it")


def _check_columns(chunk: pd.DataFrame, job: ScoreJob, champion: Champion) -> None:
    require_features(chunk.columns, champion.contract, job.source)
    names = set(map(str, chunk.columns))
    unknown = [name for name in job.keep if name not in names]
    if unknown:
        raise ProjectError(f"--keep {unknown[0]}: no such column in {job.source}; fix: name one")


def _sampled_rows(
    sample: RowSample, champion: Champion, classes: tuple[str, ...]
) -> Iterator[_LogRow]:
    """(row, features, answer) of the log sample, in row order, as the service logs them."""
    frame = sample.frame.sort_index()
    # A top-level name of two-level columns selects a frame (the stubs cannot tell).
    features, answers = (cast(pd.DataFrame, frame[group]) for group in (_FEATURES, _ANSWERS))
    probability_columns = [f"{PROBABILITY_PREFIX}{label}" for label in classes]
    predictions = Predictions(
        answers[PREDICTION].to_numpy(),
        answers[probability_columns].to_numpy() if classes else None,
        classes,
    )
    records = features.astype(object).where(features.notna(), None).to_dict("records")
    answered = [champion.task.answer(item) for item in predictions.items()]
    yield from zip(features.index.tolist(), records, answered, strict=True)


def _write_log(job: ScoreJob, rows: Iterator[_LogRow], ids: tuple[str, str], version: str) -> Path:
    assert job.log_dir is not None  # noqa: S101 - only called with a log  # nosec B101
    moment = datetime.now(UTC)
    timestamp = moment.isoformat(timespec="milliseconds")
    path = job.log_dir / log_file_name(moment, f"score-{ids[0][:12]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("wb") as stream:
        for row, features, answer in rows:
            record = prediction_record(timestamp, *ids, row, version, features, answer)
            stream.write(orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(partial, path)  # monitor never reads a half-written sample
    return path


class _Run:
    """One scoring run's state: the two output tables, the log sample and the counts."""

    def __init__(self, job: ScoreJob, champion: Champion) -> None:
        self.job, self.champion = job, champion
        self.prediction_id = uuid.uuid4().hex
        self.output, self.rejects = _Table(job.output), _Table(job.rejects)
        self.sample = RowSample(job.log_rows if job.log_dir else 0, job.seed)
        self.classes: tuple[str, ...] = ()
        self.read = self.rows = self.scored = self.rejected = 0
        self._header = pd.DataFrame()  # the input's columns and types, no rows: empty outputs

    def take(self, chunk: pd.DataFrame) -> None:
        """Check, score and write one chunk."""
        job = self.job
        if self._header.columns.empty:  # the first chunk
            _check_columns(chunk, job, self.champion)
            self._header = chunk.iloc[:0]
        self.read += len(chunk)
        if job.shard.count > 1:
            chunk = chunk[chunk.index % job.shard.count == job.shard.index]
        features, reasons = checked_rows(chunk, self.champion.contract)
        good = (reasons == "").to_numpy()
        self.rows += len(chunk)
        if not good.all():
            self.rejects.write(rejected_rows(chunk[~good], reasons[~good], self.champion.contract))
            self.rejected += int((~good).sum())
        if good.any():
            self._score(chunk, features[good])

    def _score(self, chunk: pd.DataFrame, valid: pd.DataFrame) -> None:
        predicted = self.champion.predict_arrays(valid)
        self.output.write(self._answered(chunk.loc[valid.index], predicted))
        if self.sample.size:  # features and answers side by side, names kept apart
            answers = pd.DataFrame(answer_columns(predicted), index=valid.index)
            self.sample.offer(pd.concat([valid, answers], axis=1, keys=[_FEATURES, _ANSWERS]))
            self.classes = predicted.classes
        self.scored += len(valid)

    def _answered(self, rows: pd.DataFrame, predicted: Predictions) -> pd.DataFrame:
        """The output rows: row number, kept columns, the ids, the answers."""
        frame = pd.DataFrame({ROW: rows.index.to_numpy(dtype="int64")}, index=rows.index)
        answers = answer_columns(predicted)
        renamed = input_names(self.job.keep, [ROW, PREDICTION_ID, MODEL_VERSION, *answers])
        for name in self.job.keep:  # a kept column never overwrites an answer
            frame[renamed.get(name, name)] = rows[name]
        ids = {PREDICTION_ID: self.prediction_id, MODEL_VERSION: self.champion.version}
        for name, value in ids.items():
            frame[name] = pd.Series(value, index=rows.index, dtype=object)
        return frame.assign(**answers)

    def _no_answers(self) -> Predictions:
        """The answers of no row, typed: a shard without rows writes the same columns."""
        classes = tuple(str(label) for label in getattr(self.champion.pipeline, "classes_", ()))
        if not classes:
            return Predictions(np.empty(0))
        return Predictions(np.empty(0, dtype=object), np.empty((0, len(classes))), classes)

    def finish(self) -> None:
        """Header-only files where nothing was written, so every run leaves both files."""
        if self.rejects.empty:
            no_reasons = pd.Series([], dtype=object)
            self.rejects.write(rejected_rows(self._header, no_reasons, self.champion.contract))
        if self.output.empty:
            frame = self._answered(self._header, self._no_answers())
            # Text columns as text, not "null" (a Parquet shard read with the others must match).
            text = {name: "string" for name in frame.columns if frame[name].dtype == object}
            self.output.write(frame.astype(text))


def _read_and_score(run: _Run, progress: Callable[[int, int, int], None]) -> None:
    job = run.job
    for path in (job.output, job.rejects):
        path.parent.mkdir(parents=True, exist_ok=True)
    for chunk in read_table_chunks(job.source, run.champion.contract, job.chunk_rows):
        run.take(chunk)
        progress(run.rows, run.scored, run.rejected)
    if not run.read:
        raise ProjectError(f"{job.source}: no rows; fix: supply a file with data rows")
    run.finish()


def run_score(
    job: ScoreJob, champion: Champion, progress: Callable[[int, int, int], None]
) -> ScoreResult:
    """Score `job.source` with `champion`; `progress(rows, scored, rejected)` after each chunk."""
    _check_paths(job)
    started = time.perf_counter()
    run = _Run(job, champion)
    with file_errors_named():
        try:
            _read_and_score(run, progress)
        except BaseException:
            for table in (run.output, run.rejects):
                table.close(publish=False)
            raise
        for table in (run.output, run.rejects):
            table.close(publish=True)
        logged = len(run.sample.frame)
        log_file = None
        if logged:
            ids = (run.prediction_id, f"score:{job.source.name}")
            rows = _sampled_rows(run.sample, champion, run.classes)
            log_file = _write_log(job, rows, ids, champion.version)
    return ScoreResult(
        run.rows,
        run.scored,
        run.rejected,
        logged,
        time.perf_counter() - started,
        champion.version,
        run.prediction_id,
        log_file,
    )
