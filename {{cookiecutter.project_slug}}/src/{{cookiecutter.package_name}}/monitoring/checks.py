"""What `monitor` measures: drift per column (Evidently) and the model's quality with labels.

Evidently's output is read here and nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..comparison import Scored, drop_interval, from_outputs
from ..contract import Contract
from ..errors import MonitoringInputError
from ..settings import MonitorSettings, Settings
from ..task import Task
from .records import PREDICTION
from .window import Window


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift test: Evidently's method, its score and threshold, and the verdict."""

    column: str
    method: str
    score: float
    threshold: float
    drifted: bool

    def figures(self) -> str:
        """The test with its score and threshold (a column without values has neither)."""
        if math.isnan(self.score):
            return self.method
        return f"{self.method} {self.score:.4g} (threshold {self.threshold:g})"


@dataclass(frozen=True)
class PerformanceCheck:
    """The primary metric on the labelled rows of the window against its value at evaluation."""

    metric: str
    current: float
    at_evaluation: float
    relative_drop: float
    labelled_rows: int
    degraded: bool
    # The drop's interval (both the window's and the evaluation's rows resampled), NaN when the
    # evaluation's rows are not on record; see `is_degraded`.
    low: float = math.nan
    high: float = math.nan
    confidence: float = math.nan


def quality_report(window: Window, reference: Window, contract: Contract, task: Task) -> Any:
    """Evidently's quality preset on the labelled rows vs the champion on its training data."""
    from evidently import Dataset, Report

    target = contract.target.name
    classes = list(contract.target.allowed or [])
    scored = window.probabilities is not None and reference.probabilities is not None
    definition, preset, score = task.evidently_quality(target, PREDICTION, classes, scored)

    def frame(part: Window) -> pd.DataFrame:
        assert part.labels is not None  # noqa: S101 - only called with labels  # nosec B101
        labelled = part.labels.notna()
        result = pd.DataFrame({PREDICTION: task.labels(part.frame.loc[labelled, PREDICTION])})
        result[target] = task.labels(part.labels[labelled]).to_numpy()
        if score is not None and part.probabilities is not None:
            result[score] = part.probabilities.loc[labelled, classes[-1]]
        return result

    return Report([preset]).run(
        Dataset.from_pandas(frame(window), data_definition=definition),
        Dataset.from_pandas(frame(reference), data_definition=definition),
    )


def _as_report_frame(frame: pd.DataFrame, contract: Contract, task: Task) -> pd.DataFrame:
    columns = [*contract.feature_names, PREDICTION]
    result = frame[columns].copy()
    for column in contract.features:
        if column.is_numeric:
            # Plain float64: nullable Int64 columns break Evidently's correlation step.
            result[column.name] = pd.to_numeric(result[column.name], errors="coerce").astype(float)
        else:
            # Text with NaN for missing: Evidently cannot count pandas' NA in category columns.
            values = result[column.name]
            result[column.name] = values.astype(str).where(values.notna(), np.nan)
    if task.prediction_is_categorical:  # as the categories above (a refused row has none)
        values = result[PREDICTION]
        result[PREDICTION] = values.astype(str).where(values.notna(), np.nan)
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


@dataclass(frozen=True)
class DriftReport:
    """Evidently's drift and data summary run: the snapshot to save and what it found."""

    snapshot: Any
    columns: dict[str, ColumnDrift]
    missing_share: dict[str, float]


def threshold_factor(rows: int, threshold_rows: int) -> float:
    """How much the drift thresholds are raised for a window of `rows` rows.

    A distance between a sample and its population shrinks as 1/sqrt(rows): below
    `threshold_rows` (where the thresholds were measured to keep clean traffic quiet) they are
    raised by sqrt(threshold_rows / rows), so a small window false-alarms about as rarely.
    """
    return max(1.0, math.sqrt(threshold_rows / max(rows, 1)))


def distinct_rows(frame: pd.DataFrame, contract: Contract) -> int:
    """Rows with distinct features: a repeated row adds no evidence about the distribution.

    The small-window rule counts these, so a window resampled from a few rows (a replayed or
    retried batch) is judged as the few rows it is: 300 rows drawn from 36 made one feature of
    a clean wine batch look shifted by 0.6 standard deviations.
    """
    return len(frame[contract.feature_names].drop_duplicates())


def _drift_tests(
    features: list[str], prediction: bool, monitor: MonitorSettings, task: Task, raised: float
) -> list[Any]:
    """Evidently's drift tests on `features` (if any) and on the prediction (if `prediction`).

    Their thresholds are the configured ones raised by `raised` (`threshold_factor`).
    """
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    numerical_threshold = monitor.numerical_threshold * raised
    categorical_threshold = monitor.categorical_threshold * raised
    tests: list[Any] = []
    if features:
        # The features' drift share, as the verdict counts it: the prediction is not a feature.
        tests.append(
            DataDriftPreset(
                columns=features,
                drift_share=monitor.max_drifted_share,
                num_method=monitor.numerical_test,
                num_threshold=numerical_threshold,
                cat_method=monitor.categorical_test,
                cat_threshold=categorical_threshold,
            )
        )
    if prediction:
        method, threshold = (
            (monitor.categorical_test, categorical_threshold)
            if task.prediction_is_categorical
            else (monitor.numerical_test, numerical_threshold)
        )
        tests.append(ValueDrift(column=PREDICTION, method=method, threshold=threshold))
    return tests


def drift_report(
    window: Window, reference: Window, contract: Contract, settings: Settings
) -> DriftReport:
    """Evidently's drift tests per feature and on the prediction, and a data summary.

    The summary is the dataset's checks (rows, duplicates, empty and constant columns) and the
    missing values per column. Evidently's full DataSummaryPreset also plots each column's
    distribution once per statistic (min, max, mean, quantiles...), plots the drift section
    already shows once: it was 2/3 of the report's time (9.8 s of 15 s on 13 columns).
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MissingValueCount
    from evidently.presets import DatasetStats

    monitor, task = settings.monitor, settings.task
    raised = threshold_factor(distinct_rows(window.frame, contract), monitor.threshold_rows)
    current = _as_report_frame(window.frame, contract, task)
    # Evidently cannot test a column without values; one that had values in training is the
    # strongest drift there is, reported as such below.
    empty = [name for name in [*contract.feature_names, PREDICTION] if current[name].isna().all()]
    tested = [name for name in contract.feature_names if name not in empty]
    categorical = [c.name for c in contract.features if not c.is_numeric]
    numerical = [c.name for c in contract.features if c.is_numeric]
    (categorical if task.prediction_is_categorical else numerical).append(PREDICTION)
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    drift_tests = _drift_tests(tested, PREDICTION not in empty, monitor, task, raised)
    report = Report(
        [
            *drift_tests,
            DatasetStats(),
            *(MissingValueCount(column=name) for name in [*contract.feature_names, PREDICTION]),
        ],
        include_tests=True,
    )
    snapshot = report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(
            _as_report_frame(reference.frame, contract, task), data_definition=definition
        ),
    )
    missing = {name: float(current[name].isna().mean()) for name in contract.feature_names}
    drifts = _column_drifts(snapshot.dict())
    reference_frame = reference.frame
    for name in empty:
        had_values = name in reference_frame.columns and reference_frame[name].notna().any()
        drifts[name] = ColumnDrift(
            name, "no values in the window", math.nan, math.nan, bool(had_values)
        )
    return DriftReport(snapshot, drifts, missing)


def unjudged(window: Window, settings: Settings) -> str | None:
    """Why the window's labels cannot judge the model's quality, or None when they can."""
    if window.labels is None:
        return None
    labelled = window.labels.dropna()
    minimum = settings.monitor.min_labelled_rows
    if len(labelled) < minimum:
        return (
            f"only {len(labelled)} labelled rows (monitor.min_labelled_rows is {minimum}): "
            "performance not judged"
        )
    problem = settings.task.unjudgeable(labelled)
    if problem is not None:
        return f"{problem}: performance not judged; fix: label a window with a mix of outcomes"
    return None


def is_degraded(low: float, bar: float) -> bool:
    """Whether a quality drop is an alert: the whole interval of the drop above `bar`.

    Conservative on purpose: with the low end only above zero, clean windows of a few dozen
    rows alerted (a clean wine batch: 28% worse, interval +12% to +49%, on a 28-row held-out
    figure), and an alert that cries wolf is ignored. No interval (NaN): no alert.
    """
    return math.isfinite(low) and low > bar


def check_performance(
    window: Window,
    settings: Settings,
    contract: Contract,
    metadata: dict[str, Any],
    evaluation: pd.DataFrame | None = None,
) -> PerformanceCheck | None:
    """The primary metric on the labelled rows against what the champion is expected to score.

    With its expected answers (`evaluation`: held-out and out-of-fold, kept in the bundle) the
    drop is judged with its interval: a few dozen rows move a metric by chance alone.
    """
    if window.labels is None or unjudged(window, settings) is not None:
        return None
    count = int(window.labels.notna().sum())
    metric, task = settings.evaluate.primary_metric, settings.task
    classes = list(contract.target.allowed or [])
    truth, answers = _labelled_answers(window, task, classes)
    current = _scored_metric(task, metric, truth, answers.predicted, answers.scores, classes, count)
    drop_bar = settings.monitor.max_performance_drop
    if evaluation is None:  # not in the bundle: the held-out figure is taken as exact
        at_evaluation = float(metadata["metrics"][metric])
        drop = task.relative_drop(metric, current, at_evaluation)
        return PerformanceCheck(metric, current, at_evaluation, drop, count, drop > drop_bar)
    expected = from_outputs(evaluation, task, classes)
    # The figure the window is held to: on the held-out and out-of-fold answers together.
    at_evaluation = _scored_metric(
        task, metric, expected[0], expected[1].predicted, expected[1].scores, classes, count
    )
    low, high = drop_interval(
        task,
        metric,
        expected,
        (truth, answers),
        classes,
        resamples=settings.evaluate.bootstrap_resamples,
        confidence=settings.evaluate.confidence,
        seed=settings.monitor.seed,
    )
    drop = task.relative_drop(metric, current, at_evaluation)
    return PerformanceCheck(
        metric,
        current,
        at_evaluation,
        drop,
        count,
        is_degraded(low, drop_bar),
        low,
        high,
        settings.evaluate.confidence,
    )


def _labelled_answers(window: Window, task: Task, classes: list[str]) -> tuple[pd.Series, Scored]:
    """The window's labelled rows: their truth and the model's answers, typed for metrics."""
    assert window.labels is not None  # noqa: S101 - only called with labels  # nosec B101
    labelled = window.labels.notna()
    scores = (
        None
        if window.probabilities is None
        else window.probabilities.loc[labelled, classes].to_numpy(dtype=float)
    )
    predicted = task.labels(window.frame.loc[labelled, PREDICTION]).to_numpy()
    return task.labels(window.labels[labelled]).reset_index(drop=True), Scored(predicted, scores)


def _scored_metric(
    task: Task,
    metric: str,
    truth: pd.Series,
    predicted: Any,
    scores: Any,
    classes: list[str],
    count: int,
) -> float:
    try:
        figures = task.metrics_of(truth, predicted, scores, classes, only=metric)
    except ValueError as error:  # e.g. a single class among the labels: no ROC AUC
        raise MonitoringInputError(
            f"labels: cannot score {metric} on {count} labelled rows ({error}); "
            "fix: supply labels covering every class, from logs written by this project's service"
        ) from None
    current = figures[metric]
    if not math.isfinite(current):  # e.g. ROC AUC when the labels hold one class
        raise MonitoringInputError(
            f"labels: {metric} cannot be computed on {count} labelled rows (one class only?); "
            "fix: supply labels covering every class, or wait for more"
        )
    return current
