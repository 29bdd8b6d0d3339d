"""What every scored record leaves behind: its counters in /metrics and its prediction-log line.

One home for the served path (`/predict`) and the shadow challenger (api/rollout.py).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

from ..bundle import Champion
from ..monitoring.records import prediction_record
from ..task import Prediction
from .telemetry import Telemetry

Role: TypeAlias = Literal["champion", "challenger", "shadow"]


def record_telemetry(
    telemetry: Telemetry, model: Champion, role: Role, predictions: list[Prediction]
) -> None:
    """Count `predictions` by version and role; answered ones also by class or value."""
    telemetry.model_predictions.labels(model.version, role).inc(len(predictions))
    if role == "shadow":
        return  # a shadow answer reached no client: the served distributions stay the champion's
    for item in predictions:
        if item.probabilities is None:
            telemetry.predicted_values.observe(float(item.value))
    classes = Counter(str(item.value) for item in predictions if item.probabilities is not None)
    for label, count in classes.items():
        telemetry.predicted_classes.labels(label).inc(count)


def log_entries(
    model: Champion,
    role: Role,
    ids: tuple[str, str],
    rows: list[tuple[Any, ...]],
    answers: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """One request's prediction-log records: (prediction id, request id), one per row."""
    names = model.contract.feature_names
    timestamp = datetime.now(UTC).isoformat(timespec="milliseconds")
    prediction_id, request_id = ids
    return [
        prediction_record(
            timestamp,
            prediction_id,
            request_id,
            index,
            model.version,
            dict(zip(names, row, strict=True)),
            answer,
            role,
        )
        for index, (row, answer) in enumerate(zip(rows, answers, strict=True))
    ]
