"""The latest verdict as Prometheus gauges; the service appends them to its /metrics."""

from __future__ import annotations

import math
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .verdict import MonitorResult


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
