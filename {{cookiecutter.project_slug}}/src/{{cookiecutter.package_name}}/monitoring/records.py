"""The prediction record: one line of the service's prediction log.

The service writes it (`api/routes/predict.py`), `monitor` and `retrain` read it, and label
files join on its keys; every key is spelled here once. Light on purpose: the service imports it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

TIMESTAMP = "timestamp"
# Issued by the service for every /predict request and returned to the client: labels join on
# (prediction_id, row), never on anything a client chose.
PREDICTION_ID = "prediction_id"
ROW = "row"  # a prediction is one row of one request: (prediction_id, row) identifies it
# The client's X-Request-Id (or the service's own): for tracing only; clients may repeat it.
REQUEST_ID = "request_id"
MODEL_VERSION = "model_version"
# Which model answered (champion, or the challenger under a canary or A/B rollout); "shadow"
# records, scored but not answered, go to a log of their own (api/rollout.py).
ROLE = "role"
FEATURES = "features"
PREDICTION = "prediction"
PROBABILITIES = "probabilities"
LOG_PATTERN = "predictions-*.jsonl"
# Under the log folder: the shadow challenger's records (never read as served predictions).
SHADOW_LOG_FOLDER = "shadow"


def log_file_name(moment: datetime, writer: str = "") -> str:
    """A log file begun at `moment`: named by UTC date and time, so name order is time order.

    A `writer` other than the service (a batch scoring run) adds its name, so two writers never
    share a file.
    """
    return f"predictions-{moment:%Y-%m-%dT%H%M%S}{'-' + writer if writer else ''}.jsonl"


def prediction_record(
    timestamp: str,
    prediction_id: str,
    request_id: str,
    row: int,
    model_version: str,
    features: dict[str, Any],
    answer: dict[str, Any],
    role: str = "champion",
) -> dict[str, Any]:
    """One log line: who asked, what the model saw and what it answered (`Task.answer`)."""
    return {
        TIMESTAMP: timestamp,
        PREDICTION_ID: prediction_id,
        ROW: row,
        REQUEST_ID: request_id,
        MODEL_VERSION: model_version,
        ROLE: role,
        FEATURES: features,
        **answer,
    }
