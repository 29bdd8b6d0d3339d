"""The latest verdict as Prometheus gauges; the service appends them to its /metrics."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..files import write_whole

if TYPE_CHECKING:
    from .verdict import MonitorResult


VERSION_LINE = "# model_version "


def write_prometheus_gauges(result: MonitorResult, path: Path) -> None:
    """Write the latest verdict in Prometheus' text format, replacing the file atomically.

    Every sample is labelled with the monitored model's version; the service appends the file to
    its /metrics only while it serves that version (`gauges_for`), so a new champion starts
    with no stale alert. node_exporter's textfile collector can read the file too.
    """
    write_whole(path, "\n".join(gauge_lines(result)) + "\n")


def gauge_lines(result: MonitorResult) -> list[str]:
    """The verdict's gauges, after a first line naming the monitored model version."""
    version = f'model_version="{_label(result.model_version)}"'
    lines = [VERSION_LINE + result.model_version]
    lines += _gauge(
        "model_drift_share",
        "Share of features drifted in the latest window.",
        [(version, result.drifted_share)],
    )
    lines += _gauge(
        "model_drift_alert",
        "1 when the latest monitoring run passed a threshold.",
        [(version, int(result.alert))],
    )
    lines += _gauge(
        "model_drift_window_rows", "Rows in the latest monitoring window.", [(version, result.rows)]
    )
    features = [(f'column="{_label(check.column)}",{version}', check) for check in result.features]
    lines += _gauge(
        "model_drift_column_drifted",
        "1 when a feature drifted in the latest window.",
        [(labels, int(check.drifted)) for labels, check in features],
    )
    lines += _gauge(
        "model_drift_column_score",
        "Drift score of a feature (see its method in the report).",
        [(labels, check.score) for labels, check in features if math.isfinite(check.score)],
    )
    if result.prediction is not None:
        prediction = result.prediction
        lines += _gauge(
            "model_prediction_drifted",
            "1 when the prediction drifted in the latest window.",
            [(version, int(prediction.drifted))],
        )
        if math.isfinite(prediction.score):
            lines += _gauge(
                "model_prediction_drift_score",
                "Drift score of the prediction.",
                [(version, prediction.score)],
            )
    if result.performance is not None:
        lines += _gauge(
            "model_performance_relative_drop",
            "Primary metric's drop vs evaluation (share).",
            [(version, result.performance.relative_drop)],
        )
    finished = datetime.fromisoformat(result.created_at).timestamp()
    return lines + _gauge(
        "model_drift_last_run_timestamp_seconds",
        "When the latest monitoring run finished.",
        [(version, finished)],
    )


def gauges_for(text: str, model_version: str) -> str:
    """The gauges file's text if it describes `model_version`, else '' (another model's verdict)."""
    first, _, _ = text.partition("\n")
    return text if first == VERSION_LINE + model_version else ""


def _gauge(name: str, help_text: str, samples: list[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    return lines + [f"{name}{{{labels}}} {value:.12g}" for labels, value in samples]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
