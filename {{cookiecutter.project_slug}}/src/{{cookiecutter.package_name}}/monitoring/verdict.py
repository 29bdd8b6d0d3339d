"""Stage `monitor`: compare recent production inputs and predictions with the training data.

The window is the latest `monitor.window_rows` lines of the service's prediction log, or any CSV
batch. Evidently's drift tests run per feature and on the prediction; a data summary and, when
labels are supplied, the model's quality go into the same report. The verdict is ours and
plain: the share of drifted features, and the relative drop of the primary metric against the
champion's held-out figure, each compared with its threshold in params.yaml.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ..bundle import Champion
from ..contract import Contract
from ..errors import MonitoringInputError, MonitoringReportError
from ..files import claim_new_path, utc_stamp
from ..settings import MonitorSettings, Settings
from .checks import (
    ColumnDrift,
    DriftReport,
    PerformanceCheck,
    check_performance,
    distinct_rows,
    drift_report,
    quality_report,
    threshold_factor,
    unjudged,
)
from .gauges import write_prometheus_gauges
from .records import PREDICTION
from .window import Window, read_evaluation, read_reference


@dataclass(frozen=True)
class MonitorResult:
    """Everything `monitor` decided, as written to summary.json."""

    source: str
    model_version: str
    rows: int
    rows_available: int
    features: list[ColumnDrift]
    prediction: ColumnDrift | None
    drifted_share: float
    max_drifted_share: float
    # The share of the model's feature importance on drifted features (None: not on record).
    drifted_importance: float | None
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
        cleaned: dict[str, Any] = _without_nan(result)
        return cleaned


def _without_nan(value: Any) -> Any:
    """`value` with NaN and infinities as None: JSON has no NaN (jq and browsers refuse it)."""
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nan(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def bounded(window: Window, monitor: MonitorSettings) -> Window:
    """The window, refused when too small and sampled (seeded) when above monitor.max_rows."""
    if len(window.frame) < monitor.min_rows:
        raise MonitoringInputError(
            f"{window.source}: the window has {len(window.frame)} rows, fewer than "
            f"monitor.min_rows ({monitor.min_rows}); fix: wait for more predictions "
            "or lower monitor.min_rows in params.yaml"
        )
    if len(window.frame) <= monitor.max_rows:
        return window
    frame = window.frame.sample(monitor.max_rows, random_state=monitor.seed)
    note = (
        f"the window's {len(window.frame)} rows were sampled to {monitor.max_rows} "
        "(monitor.max_rows, seeded) to bound time and memory"
    )
    return Window(
        frame,
        window.source,
        window.rows_available,
        None if window.probabilities is None else window.probabilities.loc[frame.index],
        None if window.labels is None else window.labels.loc[frame.index],
        (*window.notes, note),
    )


def importance_share(
    features: list[ColumnDrift], importance: dict[str, float] | None
) -> float | None:
    """The share of the model's (positive) feature importance carried by drifted features."""
    if not importance:
        return None
    weights = {name: max(float(value), 0.0) for name, value in importance.items()}
    total = sum(weights.get(check.column, 0.0) for check in features)
    if total <= 0:
        return None
    return sum(weights.get(check.column, 0.0) for check in features if check.drifted) / total


def _severe(features: list[ColumnDrift], factor: float) -> list[str]:
    """One sentence naming the features whose distance is `factor` times their threshold."""
    severe = [
        check
        for check in features
        # A feature with no value left (method "no values in the window") moved farthest.
        if (math.isfinite(check.score) and check.score >= factor * check.threshold)
        or (math.isnan(check.score) and check.drifted)
    ]
    if not severe:
        return []
    named = ", ".join(
        f"{check.column} ({check.method}{'' if math.isnan(check.score) else f' {check.score:.3g}'})"
        for check in severe
    )
    return [
        f"data drift: {len(severe)} feature(s) moved more than {factor:g}x the drift threshold "
        f"(monitor.severe_drift_factor): {named}"
    ]


@dataclass(frozen=True)
class Findings:
    """What the checks found on one window, before anything is written."""

    drift: DriftReport
    features: list[ColumnDrift]
    prediction: ColumnDrift | None
    share: float
    importance: float | None
    performance: PerformanceCheck | None
    alerts: list[str]


def alerts_for(findings: Findings, monitor: MonitorSettings) -> list[str]:
    """One sentence per threshold passed, with the figures behind it."""
    alerts = []
    drifted = [check.column for check in findings.features if check.drifted]
    if findings.share > monitor.max_drifted_share:
        alerts.append(
            f"data drift: {findings.share:.0%} of features drifted "
            f"(threshold {monitor.max_drifted_share:.0%}): {', '.join(drifted)}"
        )
    elif findings.importance is not None and findings.importance > monitor.max_drifted_importance:
        alerts.append(
            f"data drift: the drifted features carry {findings.importance:.0%} of the model's "
            f"feature importance (threshold {monitor.max_drifted_importance:.0%}): "
            + ", ".join(drifted)
        )
    else:
        alerts.extend(_severe(findings.features, monitor.severe_drift_factor))
    prediction = findings.prediction
    if monitor.alert_on_prediction_drift and prediction is not None and prediction.drifted:
        alerts.append(f"prediction drift: {prediction.figures()}")
    performance = findings.performance
    if performance is not None and performance.degraded:
        alerts.append(
            f"performance: {performance.metric} {performance.current:.4f} on "
            f"{performance.labelled_rows} labelled rows vs {performance.at_evaluation:.4f} at "
            f"evaluation ({performance.relative_drop:.1%} worse"
            + (
                f", worse with {performance.confidence:.0%} confidence: interval "
                f"{performance.low:+.1%} to {performance.high:+.1%}"
                if math.isfinite(performance.low)
                else ""
            )
            + f"; threshold {monitor.max_performance_drop:.0%})"
        )
    return alerts


def examine(
    settings: Settings,
    contract: Contract,
    champion: Champion,
    window: Window,
    reference: Window,
    evaluation: pd.DataFrame | None = None,
) -> Findings:
    """Every check on `window` against `reference`, and the alerts they raise (no files).

    `evaluation`: the champion's answers on its held-out rows, which the quality check
    resamples beside the window's (None: the held-out figure is taken as exact).
    """
    drift = drift_report(window, reference, contract, settings)
    # Drift in the prediction is tested on its own; the shares count the model's inputs only.
    features = [drift.columns[name] for name in contract.feature_names if name in drift.columns]
    share = sum(check.drifted for check in features) / len(contract.feature_names)
    findings = Findings(
        drift=drift,
        features=features,
        prediction=drift.columns.get(PREDICTION),
        share=share,
        importance=importance_share(features, champion.metadata.get("importance")),
        performance=check_performance(window, settings, contract, champion.metadata, evaluation),
        alerts=[],
    )
    return replace(findings, alerts=alerts_for(findings, settings.monitor))


def _small_window(rows: int, distinct: int, monitor: MonitorSettings) -> list[str]:
    factor = threshold_factor(distinct, monitor.threshold_rows)
    if factor == 1.0:
        return []
    counted = f"{rows} rows" if distinct == rows else f"{rows} rows but {distinct} distinct"
    return [
        f"{counted}, fewer than monitor.threshold_rows ({monitor.threshold_rows}): drift "
        f"thresholds raised x{factor:.2f}, as small samples are noisier"
    ]


def _claim_report_dir(folder: Path, now: datetime) -> tuple[Path, OSError | None]:
    """A new report folder, or where it would have been and why it could not be made."""
    try:
        return claim_new_path(folder, utc_stamp(now), directory=True), None
    except OSError as error:
        return folder / utc_stamp(now), error


def run_monitor(
    settings: Settings,
    contract: Contract,
    champion: Champion,
    window: Window,
    now: datetime | None = None,
    on_verdict: Callable[[MonitorResult], None] = lambda result: None,
) -> MonitorResult:
    """Run the Evidently reports on `window`, decide, announce, and write the report folder.

    `on_verdict` (print, alert) runs before anything is written: a full or read-only reports
    disk must not swallow a drift alert. A failed write is then a one-line error.
    """
    monitor = settings.monitor
    window = bounded(window, monitor)
    now = now or datetime.now(UTC)
    training = read_reference(settings, contract, champion)
    evaluation = read_evaluation(settings.registry.export_dir)
    found = examine(settings, contract, champion, window, training, evaluation)
    reason = unjudged(window, settings)
    notes = [
        *window.notes,
        *_small_window(len(window.frame), distinct_rows(window.frame, contract), monitor),
        *([reason] if reason else []),
    ]
    report_dir, claim_error = _claim_report_dir(monitor.report_dir, now)
    result = MonitorResult(
        source=window.source,
        model_version=champion.version,
        rows=len(window.frame),
        rows_available=window.rows_available,
        features=found.features,
        prediction=found.prediction,
        drifted_share=found.share,
        max_drifted_share=monitor.max_drifted_share,
        drifted_importance=found.importance,
        missing_share=found.drift.missing_share,
        performance=found.performance,
        alerts=found.alerts,
        report_dir=report_dir,
        created_at=now.isoformat(timespec="seconds"),
        notes=notes,
    )
    on_verdict(result)
    try:
        if claim_error is not None:
            raise claim_error
        _write_reports(result, found, (window, training), contract, settings)
    except OSError as error:
        raise MonitoringReportError(
            f"{report_dir}: monitoring reports not written ({error.strerror or error}); the "
            "verdict above stands (any alert was sent); fix: free space or make "
            "monitor.report_dir writable, then rerun"
        ) from None
    return result


def _write_reports(
    result: MonitorResult,
    found: Findings,
    frames: tuple[Window, Window],
    contract: Contract,
    settings: Settings,
) -> None:
    # Written beside the claimed (empty) folder, then renamed onto it: a reader, or a full disk,
    # never leaves a half-written report folder.
    partial = result.report_dir.with_name(f".{result.report_dir.name}.partial")
    try:
        partial.mkdir()
        found.drift.snapshot.save_html(str(partial / "report.html"))
        found.drift.snapshot.save_json(str(partial / "evidently.json"))
        if found.performance is not None:
            quality = quality_report(*frames, contract, settings.task)
            quality.save_html(str(partial / "quality.html"))
            quality.save_json(str(partial / "quality.json"))
        summary = json.dumps(result.to_dict(), indent=2, allow_nan=False)
        (partial / "summary.json").write_text(summary + "\n")
        os.replace(partial, result.report_dir)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        with contextlib.suppress(OSError):
            result.report_dir.rmdir()
        raise
    write_prometheus_gauges(result, settings.monitor.metrics_file)


def _change(relative_drop: float) -> str:
    return f"{relative_drop:.1%} worse" if relative_drop >= 0 else f"{-relative_drop:.1%} better"


def format_result(result: MonitorResult) -> str:
    """The short table the CLI prints: column, test, score, drifted; then the verdict."""
    rows = [("feature", "test", "score", "drifted")]
    rows += [
        (
            check.column,
            check.method,
            f"{check.score:.4g}".replace("nan", "-"),
            "DRIFT" if check.drifted else "-",
        )
        for check in sorted(result.features, key=lambda check: (not check.drifted, check.column))
    ]
    widths = [max(len(row[index]) for row in rows) for index in range(4)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.append(
        f"{result.rows} rows from {result.source}: {len(result.drifted_columns)} of "
        f"{len(result.features)} features drifted ({result.drifted_share:.0%}; "
        f"threshold {result.max_drifted_share:.0%}); model v{result.model_version}"
    )
    if result.drifted_importance is not None:
        lines.append(
            f"the drifted features carry {result.drifted_importance:.0%} of the model's "
            "feature importance"
        )
    if result.prediction is not None:
        check = result.prediction
        lines.append(
            f"prediction: {check.figures()}: " + ("DRIFT" if check.drifted else "no drift")
        )
    if result.performance is not None:
        performance = result.performance
        interval = (
            f"; {performance.confidence:.0%} interval of the drop "
            f"{performance.low:+.1%} to {performance.high:+.1%}"
            if math.isfinite(performance.low)
            else ""
        )
        lines.append(
            f"{performance.metric}: {performance.current:.4f} on {performance.labelled_rows} "
            f"labelled rows vs {performance.at_evaluation:.4f} at evaluation "
            f"({_change(performance.relative_drop)}{interval})"
        )
    lines += [f"note: {note}" for note in result.notes]
    lines += [f"ALERT {alert}" for alert in result.alerts] or ["no alert"]
    lines.append(f"report: {result.report_dir / 'report.html'}")
    return "\n".join(lines)
