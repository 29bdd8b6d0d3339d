"""The rows `monitor` checks: the prediction log's latest window, a CSV batch, their labels."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..bundle import EVALUATION_FILE, Champion
from ..contract import Contract
from ..errors import MonitoringInputError, listed
from ..row_checks import checked_rows, label_problems
from ..settings import Settings
from ..tabular import (
    FLOAT_PARSER,
    DataFileError,
    apply_contract_types,
    read_table,
    read_table_sample,
    require_columns,
    require_features,
)
from .records import FEATURES, LOG_PATTERN, PREDICTION, PREDICTION_ID, PROBABILITIES, ROW


@dataclass(frozen=True)
class Window:
    """The rows under test: contract features, the model's answers and, if known, the truth."""

    frame: pd.DataFrame
    source: str
    rows_available: int
    probabilities: pd.DataFrame | None = None
    labels: pd.Series | None = None
    notes: tuple[str, ...] = ()


def _log_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise MonitoringInputError(
            f"{path}: no prediction log here; fix: serve some predictions first "
            "(`make demo`, or `simulate --url`), or pass a CSV batch with --data"
        )
    # Files are named by the UTC time they began, so name order is time order.
    return sorted(path.glob(LOG_PATTERN))


def _parse_log_line(line: str, path: Path, number: int, names: list[str]) -> dict[str, Any]:
    try:
        entry = json.loads(line)
        features = entry[FEATURES]
        prediction = entry[PREDICTION]
    except (ValueError, KeyError, TypeError) as error:
        problem = f"missing key {error}" if isinstance(error, KeyError) else "not a JSON object"
        raise MonitoringInputError(
            f"{path}:{number}: not a prediction log line ({problem}); "
            "fix: point --log at the service's prediction_log_dir, or remove the line"
        ) from None
    missing = [name for name in names if name not in features]
    if missing:
        raise MonitoringInputError(
            f"{path}:{number}: logged features lack {listed(missing)} of the contract; "
            "fix: monitor only logs of a model served with this contract"
        )
    return {
        **{name: features[name] for name in names},
        PREDICTION: prediction,
        PREDICTION_ID: entry.get(PREDICTION_ID),
        ROW: entry.get(ROW, 0),
        PROBABILITIES: entry.get(PROBABILITIES),
    }


def _read_log_file(path: Path, names: list[str]) -> tuple[list[dict[str, Any]], str | None]:
    """A log file's entries, and a note when its last line is a torn write (then skipped)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    tail = lines.pop()  # "" when the file ends with a newline, as every whole write does
    entries = [
        _parse_log_line(line, path, number, names)
        for number, line in enumerate(lines, start=1)
        if line.strip()
    ]
    if not tail.strip():
        return entries, None
    try:
        entries.append(_parse_log_line(tail, path, len(lines) + 1, names))
    except MonitoringInputError:
        # A writer killed mid-write (or a full disk under an older service) left half a line.
        return entries, f"{path}: skipped the torn last line ({len(tail)} bytes, a cut-off write)"
    return entries, None


def read_log_window(path: Path, contract: Contract, window_rows: int) -> Window:
    """The latest `window_rows` logged predictions under `path` (a log folder or one file)."""
    names = contract.feature_names
    files = _log_files(path)
    chunks: list[list[dict[str, Any]]] = []
    notes: list[str] = []
    kept = 0
    for log_file in reversed(files):  # newest first, until the window is full
        entries, note = _read_log_file(log_file, names)
        if note:
            notes.append(note)  # reported with the verdict
        chunks.append(entries)
        kept += len(entries)
        if kept >= window_rows:
            break
    entries = [entry for chunk in reversed(chunks) for entry in chunk][-window_rows:]
    if not entries:
        raise MonitoringInputError(
            f"{path}: the prediction log is empty; fix: serve some predictions first, "
            "or pass a CSV batch with --data"
        )
    frame = pd.DataFrame(entries)
    probabilities = None
    if frame[PROBABILITIES].notna().all():
        probabilities = pd.DataFrame(list(frame[PROBABILITIES]), index=frame.index)
    frame = frame.drop(columns=PROBABILITIES)
    return Window(frame, str(path), kept, probabilities, notes=tuple(notes))


def read_batch_window(
    path: Path, contract: Contract, champion: Champion, max_rows: int, seed: int
) -> Window:
    """A CSV batch: its features, the champion's answers, and its target column if present.

    Above `max_rows` rows, a seeded uniform sample drawn while reading: time and memory stay
    bounded whatever the file holds.
    """
    try:
        frame, rows_in_file = read_table_sample(path, contract, max_rows, seed)
    except DataFileError as error:
        raise MonitoringInputError(str(error)) from None
    require_features(frame.columns, contract, path, MonitoringInputError)
    if frame.empty:
        raise MonitoringInputError(f"{path}: no rows; fix: supply a batch with data rows")
    notes: list[str] = []
    if rows_in_file > len(frame):
        notes.append(
            f"the batch's {rows_in_file} rows were sampled to {len(frame)} while reading "
            "(monitor.max_rows, seeded) to bound time and memory"
        )
    labels = None
    if contract.target.name in frame.columns:
        labels = frame[contract.target.name]
        check_labels(labels, contract, path)
    reasons = checked_rows(frame, contract)[1]
    broken = reasons != ""  # the rows the service would refuse (422)
    if broken.any():
        notes.append(_broken_rows_note(reasons[broken], len(frame)))
        labels = None if labels is None else labels.where(~broken)
    window = frame[contract.feature_names].copy()
    # The rows the service would refuse get no answer: the model may not take them (inf).
    predictions, probabilities = predict(champion, window[~broken])
    window[PREDICTION] = pd.Series(predictions, index=window.index[~broken], dtype=object)
    if probabilities is not None:
        probabilities = probabilities.reindex(window.index)
    return Window(window, str(path), rows_in_file, probabilities, labels, tuple(notes))


def check_labels(labels: pd.Series, contract: Contract, source: Path) -> None:
    """Refuse labels that are no class of the contract (or no number): no metric takes them."""
    problems = label_problems(labels, contract)
    if problems:
        row, problem = next(iter(problems.items()))
        raise MonitoringInputError(
            f"{source}: {len(problems)} label(s) break the contract (row {row}: {problem}); "
            f"fix: correct them, or the target's allowed values in the contract"
        )


def _broken_rows_note(reasons: pd.Series, rows: int) -> str:
    """A note counting the rows the service would refuse (`reasons`), naming the first problem.

    They stay in the data checks and the drift tests: blanks, values out of range and unknown
    codes are what those exist to see. They get no prediction, so no label judges them.
    """
    # Numbered as `score` numbers rows: by position in the file, from 0, sampled or not.
    first = f"row {reasons.index[0]}: {reasons.iloc[0]}"
    return (
        f"{len(reasons)} of {rows} rows break the contract, which the service "
        f"would refuse ({first}); they get no prediction; `score` writes every row's reason"
    )


def predict(champion: Champion, frame: pd.DataFrame) -> tuple[list[Any], pd.DataFrame | None]:
    """The champion's answers for `frame`, through the service's own code, as log columns."""
    predictions = champion.predict_frame(frame) if len(frame) else []
    values = [item.value for item in predictions]
    if not predictions or predictions[0].probabilities is None:
        return values, None
    probabilities = [item.probabilities for item in predictions]
    return values, pd.DataFrame(probabilities, index=frame.index)


def _label_file(labels_path: Path, contract: Contract) -> pd.DataFrame:
    target = contract.target.name
    try:
        labels = read_table(labels_path)
    except DataFileError as error:
        raise MonitoringInputError(str(error)) from None
    fix = (
        f"give it the columns {PREDICTION_ID} (from the /predict answer), {ROW} (optional, "
        f"default 0) and {target}"
    )
    required = [PREDICTION_ID, target]
    require_columns(labels.columns, required, labels_path, fix, MonitoringInputError, "columns")
    if ROW not in labels.columns:
        labels[ROW] = 0
    # Typed as the training data is: a code read as 3.0 beside a blank is the class "3".
    return apply_contract_types(labels, contract)


def _keys(frame: pd.DataFrame) -> pd.MultiIndex:
    ids = frame[PREDICTION_ID].astype(object).where(frame[PREDICTION_ID].notna(), "").astype(str)
    rows = pd.to_numeric(frame[ROW], errors="coerce").fillna(-1).astype(int)
    return pd.MultiIndex.from_arrays([ids, rows])


def attach_labels(window: Window, labels_path: Path, contract: Contract) -> Window:
    """Join a label file (prediction_id, row, <target>) onto the window's logged predictions.

    Each prediction takes at most one label: a repeated (prediction_id, row) keeps its first
    label, and labels for predictions not in the window are refused; both are counted.
    """
    if PREDICTION_ID not in window.frame.columns:
        raise MonitoringInputError(
            f"{labels_path}: labels join on the service's prediction ids, which a CSV batch has "
            f"none of; fix: put the {contract.target.name} column in the batch itself"
        )
    labels = _label_file(labels_path, contract)
    check_labels(labels[contract.target.name], contract, labels_path)
    in_file = len(labels)
    blank = labels[contract.target.name].isna()
    if blank.all():
        raise MonitoringInputError(
            f"{labels_path}: all {in_file} labels are blank; fix: fill in the "
            f"{contract.target.name} column"
        )
    labels = labels[~blank]  # no label: it must not hide a later label of the same prediction
    keys = _keys(labels)
    repeated = keys.duplicated(keep="first")
    truth = pd.Series(labels[contract.target.name].to_numpy(), index=keys)[~repeated]
    window_keys = _keys(window.frame)
    # A log line copied twice is still one prediction: only its first copy is labelled.
    joined = pd.Series(truth.reindex(window_keys).to_numpy(), index=window.frame.index)
    joined[window_keys.duplicated(keep="first")] = None
    unknown = int((~truth.index.isin(window_keys)).sum())
    if joined.notna().sum() == 0:
        raise MonitoringInputError(
            f"{labels_path}: none of its {in_file} labels matches a prediction in the window; "
            "fix: label predictions from this log (the prediction_id each /predict answer gave)"
        )
    notes = window.notes
    if unknown or repeated.any() or blank.any():
        notes = (
            *notes,
            f"labels: {int(joined.notna().sum())} joined; refused {unknown} for predictions not "
            f"in the window, {int(repeated.sum())} repeating an already-labelled prediction "
            f"and {int(blank.sum())} with a blank {contract.target.name}",
        )
    return replace(window, labels=joined, notes=notes)


def read_reference(settings: Settings, contract: Contract, champion: Champion) -> Window:
    """The training pool, with the champion's answers on it: the reference for every check."""
    path = settings.data.train_path
    if not path.is_file():
        raise MonitoringInputError(
            f"{path}: reference (training) data not found; fix: run the pipeline (`dvc repro`)"
        )
    try:
        frame = read_table(path, contract)
    except DataFileError as error:
        raise MonitoringInputError(str(error)) from None
    reference = frame[contract.feature_names].copy()
    reference[PREDICTION], probabilities = predict(champion, reference)
    return Window(reference, str(path), len(reference), probabilities, frame[contract.target.name])


def read_evaluation(bundle: Path) -> pd.DataFrame | None:
    """The champion's answers on its held-out rows, kept in its bundle (None if not there)."""
    path = bundle / EVALUATION_FILE
    try:
        return pd.read_csv(path, float_precision=FLOAT_PARSER)
    except (OSError, ValueError):
        return None
