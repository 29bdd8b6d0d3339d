"""Stage `monitor`: compare recent production inputs and predictions with the training data.

The window is the latest `monitor.window_rows` lines of the service's prediction log, or any CSV
batch. Evidently's drift tests run per feature and on the prediction; a data summary and, when
labels are supplied, the model's quality go into the same report. The verdict is ours and
plain: the share of drifted features, and the relative drop of the primary metric against the
champion's held-out figure, each compared with its threshold in params.yaml.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .contract import Contract
from .errors import ProjectError
from .metrics import classification_metrics, higher_is_better, regression_metrics
from .settings import Settings
from .tabular import DataFileError, read_table, read_table_sample

PREDICTION = "prediction"
LOG_PATTERN = "predictions-*.jsonl"
# Columns a label file joins on: a prediction is one row of one request.
REQUEST_ID, ROW = "request_id", "row"


class MonitoringInputError(ProjectError):
    """A window, reference or label file that cannot be monitored; names the file and the fix."""


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift test: Evidently's method, its score and threshold, and the verdict."""

    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class PerformanceCheck:
    """The primary metric on the labelled rows of the window against its value at evaluation."""

    metric: str
    current: float
    at_evaluation: float
    relative_drop: float
    labelled_rows: int
    degraded: bool


@dataclass(frozen=True)
class Window:
    """The rows under test: contract features, the model's answers and, if known, the truth."""

    frame: pd.DataFrame
    source: str
    rows_available: int
    probabilities: pd.DataFrame | None = None
    labels: pd.Series | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class MonitorResult:
    """Everything `monitor` decided, as written to summary.json."""

    source: str
    rows: int
    rows_available: int
    features: list[ColumnDrift]
    prediction: ColumnDrift | None
    drifted_share: float
    max_drifted_share: float
    missing_share: dict[str, float]
    performance: PerformanceCheck | None
    alerts: list[str]
    report_dir: Path
    created_at: str
    notes: list[str] = field(default_factory=list)

    @property
    def alert(self) -> bool:
        """Whether a threshold was passed."""
        return bool(self.alerts)

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the drifted features."""
        return [check.column for check in self.features if check.drifted]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        result = asdict(self)
        result["report_dir"] = str(self.report_dir)
        result["alert"] = self.alert
        result["drifted_columns"] = self.drifted_columns
        return result


# --- the window ------------------------------------------------------------------------------


def _log_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise MonitoringInputError(
            f"{path}: no prediction log here; fix: serve some predictions first "
            "(`make demo`, or `simulate --url`), or pass a CSV batch with --data"
        )
    # Files are named by UTC date, so name order is time order.
    return sorted(path.glob(LOG_PATTERN))


def _parse_log_line(line: str, path: Path, number: int, names: list[str]) -> dict[str, Any]:
    try:
        entry = json.loads(line)
        features = entry["features"]
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
            f"{path}:{number}: logged features lack {', '.join(missing[:5])} of the contract; "
            "fix: monitor only logs of a model served with this contract"
        )
    return {
        **{name: features[name] for name in names},
        PREDICTION: prediction,
        REQUEST_ID: entry.get(REQUEST_ID),
        ROW: entry.get(ROW, 0),
        "probabilities": entry.get("probabilities"),
    }


def read_log_window(path: Path, contract: Contract, window_rows: int) -> Window:
    """The latest `window_rows` logged predictions under `path` (a log folder or one file)."""
    names = contract.feature_names
    files = _log_files(path)
    chunks: list[list[dict[str, Any]]] = []
    kept = 0
    for log_file in reversed(files):  # newest first, until the window is full
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
        entries = [
            _parse_log_line(line, log_file, number, names)
            for number, line in enumerate(lines, start=1)
            if line.strip()
        ]
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
    if frame["probabilities"].notna().all():
        probabilities = pd.DataFrame(list(frame["probabilities"]), index=frame.index)
    frame = frame.drop(columns="probabilities")
    return Window(frame, str(path), kept, probabilities)


def read_batch_window(
    path: Path, contract: Contract, champion: Any, max_rows: int, seed: int
) -> Window:
    """A CSV batch: its features, the champion's answers, and its target column if present.

    Above `max_rows` rows, a seeded uniform sample drawn while reading: time and memory stay
    bounded whatever the file holds.
    """
    try:
        frame, rows_in_file = read_table_sample(path, contract, max_rows, seed)
    except DataFileError as error:
        raise MonitoringInputError(str(error)) from None
    missing = [name for name in contract.feature_names if name not in frame.columns]
    if missing:
        raise MonitoringInputError(
            f"{path}: missing contract columns {', '.join(missing)}; "
            "fix: supply every feature the contract names"
        )
    if frame.empty:
        raise MonitoringInputError(f"{path}: no rows; fix: supply a batch with data rows")
    window = frame[contract.feature_names].copy()
    predictions, probabilities = predict(champion, window, contract)
    window[PREDICTION] = predictions
    labels = frame[contract.target.name] if contract.target.name in frame.columns else None
    notes: tuple[str, ...] = ()
    if rows_in_file > len(window):
        notes = (
            f"the batch's {rows_in_file} rows were sampled to {len(window)} while reading "
            "(monitor.max_rows, seeded) to bound time and memory",
        )
    return Window(window, str(path), rows_in_file, probabilities, labels, notes)


def predict(
    champion: Any, frame: pd.DataFrame, contract: Contract
) -> tuple[list[Any], pd.DataFrame | None]:
    """The champion's predictions for `frame` (and class probabilities for a classifier)."""
    from .train import model_inputs

    inputs = model_inputs(frame, contract)
    pipeline = champion.pipeline
    if champion.task != "classification":
        return [float(value) for value in pipeline.predict(inputs)], None
    probabilities = pipeline.predict_proba(inputs)
    classes = [str(label) for label in pipeline.classes_]
    predictions = [classes[index] for index in probabilities.argmax(axis=1)]
    return predictions, pd.DataFrame(probabilities, columns=classes, index=frame.index)


def attach_labels(window: Window, labels_path: Path, target: str) -> Window:
    """Join a label file (request_id, row, <target>) onto the window's logged predictions."""
    try:
        labels = read_table(labels_path)
    except DataFileError as error:
        raise MonitoringInputError(str(error)) from None
    missing = [column for column in (REQUEST_ID, target) if column not in labels.columns]
    if missing:
        raise MonitoringInputError(
            f"{labels_path}: label file lacks column(s) {', '.join(missing)}; "
            f"fix: give it the columns {REQUEST_ID}, {ROW} (optional, default 0) and {target}"
        )
    if REQUEST_ID not in window.frame.columns:
        raise MonitoringInputError(
            f"{labels_path}: labels join on request ids, which a CSV batch has none of; "
            f"fix: put the {target} column in the batch itself"
        )
    if ROW not in labels.columns:
        labels[ROW] = 0
    keys = labels[[REQUEST_ID, ROW]].astype({REQUEST_ID: str, ROW: int})
    truth = pd.Series(labels[target].to_numpy(), index=pd.MultiIndex.from_frame(keys))
    truth = truth[~truth.index.duplicated(keep="last")]
    window_keys = pd.MultiIndex.from_frame(
        window.frame[[REQUEST_ID, ROW]].astype({REQUEST_ID: str, ROW: int})
    )
    joined = pd.Series(truth.reindex(window_keys).to_numpy(), index=window.frame.index)
    if joined.notna().sum() == 0:
        raise MonitoringInputError(
            f"{labels_path}: none of its {len(labels)} labels matches a prediction in the window; "
            "fix: label predictions from this log (same request ids)"
        )
    return replace(window, labels=joined)


# --- the checks ------------------------------------------------------------------------------


def read_reference(settings: Settings, contract: Contract, champion: Any) -> Window:
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
    reference[PREDICTION], probabilities = predict(champion, reference, contract)
    return Window(reference, str(path), len(reference), probabilities, frame[contract.target.name])


def quality_report(window: Window, reference: Window, contract: Contract, task: str) -> Any:
    """Evidently's quality preset on the labelled rows vs the champion on its training data."""
    from evidently import (
        BinaryClassification,
        DataDefinition,
        Dataset,
        MulticlassClassification,
        Regression,
        Report,
    )
    from evidently.presets import ClassificationPreset, RegressionPreset

    target = contract.target.name
    classes = list(contract.target.allowed or [])
    positive_score = f"score_{classes[-1]}" if classes else ""
    binary = task == "classification" and len(classes) == 2  # noqa: PLR2004 - binary task

    def frame(part: Window) -> pd.DataFrame:
        assert part.labels is not None  # noqa: S101 - only called with labels  # nosec B101
        labelled = part.labels.notna()
        result = pd.DataFrame({PREDICTION: part.frame.loc[labelled, PREDICTION]})
        if task == "classification":
            result[PREDICTION] = result[PREDICTION].astype(str)
            result[target] = part.labels[labelled].astype(str)
            if binary and part.probabilities is not None:
                result[positive_score] = part.probabilities.loc[labelled, classes[-1]]
        else:
            result[PREDICTION] = pd.to_numeric(result[PREDICTION]).astype(float)
            result[target] = pd.to_numeric(part.labels[labelled]).astype(float)
        return result

    if task == "regression":
        definition = DataDefinition(
            numerical_columns=[target, PREDICTION],
            regression=[Regression(target=target, prediction=PREDICTION)],
        )
        preset: Any = RegressionPreset()
    else:
        scored = binary and window.probabilities is not None
        task_definition: Any = (
            BinaryClassification(
                target=target,
                prediction_labels=PREDICTION,
                prediction_probas=positive_score if scored else None,
                pos_label=classes[-1],
            )
            if binary
            else MulticlassClassification(target=target, prediction_labels=PREDICTION)
        )
        definition = DataDefinition(
            categorical_columns=[target, PREDICTION],
            numerical_columns=[positive_score] if scored else [],
            classification=[task_definition],
        )
        preset = ClassificationPreset()
    return Report([preset]).run(
        Dataset.from_pandas(frame(window), data_definition=definition),
        Dataset.from_pandas(frame(reference), data_definition=definition),
    )


def _as_report_frame(frame: pd.DataFrame, contract: Contract, task: str) -> pd.DataFrame:
    columns = [*contract.feature_names, PREDICTION]
    result = frame[columns].copy()
    for column in contract.features:
        if column.is_numeric:
            # Plain float64: nullable Int64 columns break Evidently's correlation step.
            result[column.name] = pd.to_numeric(result[column.name], errors="coerce").astype(float)
        else:
            result[column.name] = result[column.name].astype("string")
    if task == "classification":
        result[PREDICTION] = result[PREDICTION].astype("string")
    else:
        result[PREDICTION] = pd.to_numeric(result[PREDICTION], errors="coerce").astype(float)
    return result


def _column_drifts(snapshot: dict[str, Any]) -> dict[str, ColumnDrift]:
    scores = {metric["id"]: metric["value"] for metric in snapshot["metrics"]}
    drifts: dict[str, ColumnDrift] = {}
    for test in snapshot.get("tests", []):
        params = test["metric_config"]["params"]
        if not params.get("type", "").endswith(":ValueDrift"):
            continue
        column = params["column"]
        score = scores.get(test["metric_config"]["metric_id"])
        drifts[column] = ColumnDrift(
            column=column,
            method=str(params.get("method")),
            score=float(score) if isinstance(score, int | float) else math.nan,
            threshold=float(params.get("threshold") or math.nan),
            drifted=str(test["status"]).rsplit(".", 1)[-1] == "FAIL",
        )
    return drifts


def check_performance(
    window: Window, settings: Settings, contract: Contract, metadata: dict[str, Any]
) -> PerformanceCheck | None:
    """The primary metric on the labelled rows, against the champion's held-out figure."""
    if window.labels is None:
        return None
    labelled = window.labels.notna()
    count = int(labelled.sum())
    if count < settings.monitor.min_labelled_rows:
        return None
    metric = settings.evaluate.primary_metric
    truth = window.labels[labelled]
    predicted = window.frame.loc[labelled, PREDICTION]
    if settings.task == "classification":
        truth = truth.astype(str)
        classes = list(contract.target.allowed or [])
        if window.probabilities is None:
            raise MonitoringInputError(
                f"{window.source}: logged predictions carry no class probabilities; "
                "fix: monitor logs written by this project's service"
            )
        scores = window.probabilities.loc[labelled, classes].to_numpy(dtype=float)
        try:
            figures = classification_metrics(truth, predicted.to_numpy(), scores, classes)
        except ValueError as error:  # e.g. a single class among the labels: no ROC AUC
            raise MonitoringInputError(
                f"labels: cannot score {metric} on {count} labelled rows ({error}); "
                "fix: supply labels covering every class"
            ) from None
    else:
        figures = regression_metrics(
            pd.to_numeric(truth), pd.to_numeric(predicted).to_numpy(dtype=float)
        )
    current = figures[metric]
    at_evaluation = float(metadata["metrics"][metric])
    worse = (
        at_evaluation - current
        if higher_is_better(settings.task, metric)
        else current - at_evaluation
    )
    relative_drop = worse / abs(at_evaluation) if at_evaluation else worse
    return PerformanceCheck(
        metric=metric,
        current=current,
        at_evaluation=at_evaluation,
        relative_drop=relative_drop,
        labelled_rows=count,
        degraded=relative_drop > settings.monitor.max_performance_drop,
    )


def claim_new_path(folder: Path, stem: str, suffix: str = "", *, directory: bool = False) -> Path:
    """`folder/<stem><suffix>`, else `<stem>-1<suffix>`, `-2`...: the first that did not exist.

    It is created atomically (mkdir, or an exclusive open of an empty file), so two runs in the
    same second never share a path and nothing earlier is overwritten.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        candidate = folder / f"{stem if attempt == 0 else f'{stem}-{attempt}'}{suffix}"
        try:
            if directory:
                candidate.mkdir()
            else:
                candidate.open("x").close()
        except FileExistsError:
            continue
        return candidate
    raise MonitoringInputError(f"{folder}: cannot create a new {stem}{suffix}")


def utc_stamp(now: datetime) -> str:
    """The time stamp that names reports and batches (sorts by time)."""
    return now.strftime("%Y%m%dT%H%M%SZ")


def run_monitor(
    settings: Settings,
    contract: Contract,
    champion: Any,
    window: Window,
    now: datetime | None = None,
) -> MonitorResult:
    """Run the Evidently report on `window`, decide, and write the report folder."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    monitor = settings.monitor
    if len(window.frame) < monitor.min_rows:
        raise MonitoringInputError(
            f"{window.source}: the window has {len(window.frame)} rows, fewer than "
            f"monitor.min_rows ({monitor.min_rows}); fix: wait for more predictions "
            "or lower monitor.min_rows in params.yaml"
        )
    now = now or datetime.now(UTC)
    notes = list(window.notes)
    frame = window.frame
    if len(frame) > monitor.max_rows:
        frame = frame.sample(monitor.max_rows, random_state=monitor.seed)
        notes.append(
            f"the window's {len(window.frame)} rows were sampled to {monitor.max_rows} "
            "(monitor.max_rows, seeded) to bound time and memory"
        )
    window = Window(
        frame,
        window.source,
        window.rows_available,
        None if window.probabilities is None else window.probabilities.loc[frame.index],
        None if window.labels is None else window.labels.loc[frame.index],
    )
    task = settings.task
    training = read_reference(settings, contract, champion)
    reference = _as_report_frame(training.frame, contract, task)
    current = _as_report_frame(window.frame, contract, task)
    categorical = [c.name for c in contract.features if not c.is_numeric]
    numerical = [c.name for c in contract.features if c.is_numeric]
    (categorical if task == "classification" else numerical).append(PREDICTION)
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    columns = [*contract.feature_names, PREDICTION]
    report = Report(
        [
            DataDriftPreset(
                columns=columns,
                drift_share=monitor.max_drifted_share,
                num_method=monitor.numerical_test,
                num_threshold=monitor.numerical_threshold,
                cat_method=monitor.categorical_test,
                cat_threshold=monitor.categorical_threshold,
            ),
            DataSummaryPreset(columns=columns),
        ],
        include_tests=True,
    )
    snapshot = report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    drifts = _column_drifts(snapshot.dict())
    features = [drifts[name] for name in contract.feature_names if name in drifts]
    drifted_share = sum(check.drifted for check in features) / len(contract.feature_names)
    performance = check_performance(window, settings, contract, champion.metadata)
    if window.labels is not None and performance is None:
        notes.append(
            f"only {int(window.labels.notna().sum())} labelled rows "
            f"(monitor.min_labelled_rows is {monitor.min_labelled_rows}): performance not judged"
        )
    alerts = []
    if drifted_share > monitor.max_drifted_share:
        names = ", ".join(check.column for check in features if check.drifted)
        alerts.append(
            f"data drift: {drifted_share:.0%} of features drifted "
            f"(threshold {monitor.max_drifted_share:.0%}): {names}"
        )
    if performance is not None and performance.degraded:
        alerts.append(
            f"performance: {performance.metric} {performance.current:.4f} on "
            f"{performance.labelled_rows} labelled rows vs {performance.at_evaluation:.4f} at "
            f"evaluation ({performance.relative_drop:.1%} worse; threshold "
            f"{monitor.max_performance_drop:.0%})"
        )
    report_dir = claim_new_path(monitor.report_dir, utc_stamp(now), directory=True)
    snapshot.save_html(str(report_dir / "report.html"))
    snapshot.save_json(str(report_dir / "evidently.json"))
    if performance is not None:
        quality = quality_report(window, training, contract, task)
        quality.save_html(str(report_dir / "quality.html"))
        quality.save_json(str(report_dir / "quality.json"))
    result = MonitorResult(
        source=window.source,
        rows=len(window.frame),
        rows_available=window.rows_available,
        features=features,
        prediction=drifts.get(PREDICTION),
        drifted_share=drifted_share,
        max_drifted_share=monitor.max_drifted_share,
        missing_share={name: float(current[name].isna().mean()) for name in contract.feature_names},
        performance=performance,
        alerts=alerts,
        report_dir=report_dir,
        created_at=now.isoformat(timespec="seconds"),
        notes=notes,
    )
    (report_dir / "summary.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    write_prometheus_gauges(result, monitor.metrics_file)
    return result


def write_prometheus_gauges(result: MonitorResult, path: Path) -> None:
    """Write the latest verdict in Prometheus' text format, replacing the file atomically.

    The service's /metrics appends it; node_exporter's textfile collector can read it too.
    """
    lines = [
        "# HELP model_drift_share Share of features drifted in the latest monitoring window.",
        "# TYPE model_drift_share gauge",
        f"model_drift_share {result.drifted_share:.6g}",
        "# HELP model_drift_alert 1 when the latest monitoring run passed a threshold.",
        "# TYPE model_drift_alert gauge",
        f"model_drift_alert {int(result.alert)}",
        "# HELP model_drift_window_rows Rows in the latest monitoring window.",
        "# TYPE model_drift_window_rows gauge",
        f"model_drift_window_rows {result.rows}",
        "# HELP model_drift_column_drifted 1 when a column drifted in the latest window.",
        "# TYPE model_drift_column_drifted gauge",
    ]
    checks = [*result.features, *([result.prediction] if result.prediction else [])]
    finished = datetime.fromisoformat(result.created_at).timestamp()
    lines += [
        f'model_drift_column_drifted{{column="{_label(check.column)}"}} {int(check.drifted)}'
        for check in checks
    ]
    lines += [
        "# HELP model_drift_column_score Drift score of a column (see its method in the report).",
        "# TYPE model_drift_column_score gauge",
    ]
    lines += [
        f'model_drift_column_score{{column="{_label(check.column)}"}} {check.score:.6g}'
        for check in checks
        if math.isfinite(check.score)
    ]
    if result.performance is not None:
        lines += [
            "# HELP model_performance_relative_drop Primary metric's drop vs evaluation (share).",
            "# TYPE model_performance_relative_drop gauge",
            f"model_performance_relative_drop {result.performance.relative_drop:.6g}",
        ]
    lines += [
        "# HELP model_drift_last_run_timestamp_seconds When the latest monitoring run finished.",
        "# TYPE model_drift_last_run_timestamp_seconds gauge",
        f"model_drift_last_run_timestamp_seconds {finished:.0f}",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".tmp")
    partial.write_text("\n".join(lines) + "\n")
    os.replace(partial, path)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_result(result: MonitorResult) -> str:
    """The short table the CLI prints: column, test, score, drifted; then the verdict."""
    checks = [*result.features, *([result.prediction] if result.prediction else [])]
    rows = [("column", "test", "score", "drifted")]
    rows += [
        (check.column, check.method, f"{check.score:.4g}", "DRIFT" if check.drifted else "-")
        for check in sorted(checks, key=lambda check: (not check.drifted, check.column))
    ]
    widths = [max(len(row[index]) for row in rows) for index in range(4)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.append(
        f"{result.rows} rows from {result.source}: {len(result.drifted_columns)} of "
        f"{len(result.features)} features drifted ({result.drifted_share:.0%}; "
        f"threshold {result.max_drifted_share:.0%})"
    )
    if result.performance is not None:
        performance = result.performance
        lines.append(
            f"{performance.metric}: {performance.current:.4f} on {performance.labelled_rows} "
            f"labelled rows vs {performance.at_evaluation:.4f} at evaluation "
            f"({performance.relative_drop:+.1%} worse)"
        )
    lines += [f"note: {note}" for note in result.notes]
    lines += [f"ALERT {alert}" for alert in result.alerts] or ["no alert"]
    lines.append(f"report: {result.report_dir / 'report.html'}")
    return "\n".join(lines)
