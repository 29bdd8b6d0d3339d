"""Stage `monitor`: compare recent production inputs and predictions with the training data.

The window is the latest `monitor.window_rows` lines of the service's prediction log, or any CSV
batch. Evidently's drift tests run per feature and on the prediction; a data summary and, when
labels are supplied, the model's quality go into the same report. The verdict is ours and
plain: the share of drifted features, and the relative drop of the primary metric against the
champion's held-out figure, each compared with its threshold in params.yaml.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..bundle import Champion
from ..contract import Contract
from ..errors import MonitoringInputError
from ..files import claim_new_path, utc_stamp
from ..settings import MonitorSettings, Settings
from .checks import ColumnDrift, PerformanceCheck, check_performance, drift_report, quality_report
from .gauges import write_prometheus_gauges
from .records import PREDICTION
from .window import Window, read_reference


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


def alerts_for(
    features: list[ColumnDrift],
    share: float,
    performance: PerformanceCheck | None,
    monitor: MonitorSettings,
) -> list[str]:
    """One sentence per threshold passed, with the figures behind it."""
    alerts = []
    drifted = [check.column for check in features if check.drifted]
    if share > monitor.max_drifted_share:
        alerts.append(
            f"data drift: {share:.0%} of features drifted "
            f"(threshold {monitor.max_drifted_share:.0%}): {', '.join(drifted)}"
        )
    if performance is not None and performance.degraded:
        alerts.append(
            f"performance: {performance.metric} {performance.current:.4f} on "
            f"{performance.labelled_rows} labelled rows vs {performance.at_evaluation:.4f} at "
            f"evaluation ({performance.relative_drop:.1%} worse; threshold "
            f"{monitor.max_performance_drop:.0%})"
        )
    return alerts


def run_monitor(
    settings: Settings,
    contract: Contract,
    champion: Champion,
    window: Window,
    now: datetime | None = None,
) -> MonitorResult:
    """Run the Evidently reports on `window`, decide, and write the report folder."""
    monitor = settings.monitor
    window = bounded(window, monitor)
    now = now or datetime.now(UTC)
    training = read_reference(settings, contract, champion)
    drift = drift_report(window, training, contract, settings)
    # Drift in the prediction is reported, but the share counts the model's inputs only.
    features = [drift.columns[name] for name in contract.feature_names if name in drift.columns]
    share = sum(check.drifted for check in features) / len(contract.feature_names)
    performance = check_performance(window, settings, contract, champion.metadata)
    notes = list(window.notes)
    if window.labels is not None and performance is None:
        notes.append(
            f"only {int(window.labels.notna().sum())} labelled rows "
            f"(monitor.min_labelled_rows is {monitor.min_labelled_rows}): performance not judged"
        )
    report_dir = claim_new_path(monitor.report_dir, utc_stamp(now), directory=True)
    drift.snapshot.save_html(str(report_dir / "report.html"))
    drift.snapshot.save_json(str(report_dir / "evidently.json"))
    if performance is not None:
        quality = quality_report(window, training, contract, settings.task)
        quality.save_html(str(report_dir / "quality.html"))
        quality.save_json(str(report_dir / "quality.json"))
    result = MonitorResult(
        source=window.source,
        model_version=champion.version,
        rows=len(window.frame),
        rows_available=window.rows_available,
        features=features,
        prediction=drift.columns.get(PREDICTION),
        drifted_share=share,
        max_drifted_share=monitor.max_drifted_share,
        missing_share=drift.missing_share,
        performance=performance,
        alerts=alerts_for(features, share, performance, monitor),
        report_dir=report_dir,
        created_at=now.isoformat(timespec="seconds"),
        notes=notes,
    )
    (report_dir / "summary.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    write_prometheus_gauges(result, monitor.metrics_file)
    return result


def _change(relative_drop: float) -> str:
    return f"{relative_drop:.1%} worse" if relative_drop >= 0 else f"{-relative_drop:.1%} better"


def format_result(result: MonitorResult) -> str:
    """The short table the CLI prints: column, test, score, drifted; then the verdict."""
    rows = [("feature", "test", "score", "drifted")]
    rows += [
        (check.column, check.method, f"{check.score:.4g}", "DRIFT" if check.drifted else "-")
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
    if result.prediction is not None:
        check = result.prediction
        lines.append(
            f"prediction: {check.method} {check.score:.4g} (threshold {check.threshold:g}): "
            + ("DRIFT" if check.drifted else "no drift")
        )
    if result.performance is not None:
        performance = result.performance
        lines.append(
            f"{performance.metric}: {performance.current:.4f} on {performance.labelled_rows} "
            f"labelled rows vs {performance.at_evaluation:.4f} at evaluation "
            f"({_change(performance.relative_drop)})"
        )
    lines += [f"note: {note}" for note in result.notes]
    lines += [f"ALERT {alert}" for alert in result.alerts] or ["no alert"]
    lines.append(f"report: {result.report_dir / 'report.html'}")
    return "\n".join(lines)
