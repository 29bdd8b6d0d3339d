"""Quality metrics for both tasks, with the direction in which each one improves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .settings import METRICS, Task

BINARY = 2


def higher_is_better(task: Task, metric: str) -> bool:
    """Whether a larger value of `metric` means a better model."""
    return METRICS[task][metric]


def is_better(task: Task, metric: str, challenger: float, champion: float, margin: float) -> bool:
    """Whether `challenger` beats `champion` on `metric` by at least `margin`."""
    if higher_is_better(task, metric):
        return challenger >= champion + margin and challenger > champion
    return challenger <= champion - margin and challenger < champion


def meets_threshold(task: Task, metric: str, value: float, threshold: float) -> bool:
    """Whether `value` is on the good side of `threshold` (inclusive)."""
    return value >= threshold if higher_is_better(task, metric) else value <= threshold


def classification_metrics(
    y_true: pd.Series,
    y_pred: np.ndarray[Any, Any],
    scores: np.ndarray[Any, Any],
    classes: Sequence[str],
) -> dict[str, float]:
    """Accuracy, F1, precision, recall and ROC AUC; a binary target's last class is positive."""
    from sklearn import metrics

    binary = len(classes) == BINARY
    average = "binary" if binary else "macro"
    positive = classes[-1] if binary else None
    kwargs: dict[str, Any] = {"average": average, "zero_division": 0}
    if binary:
        kwargs["pos_label"] = positive
    roc_auc = (
        metrics.roc_auc_score(y_true == positive, scores[:, -1])
        if binary
        else metrics.roc_auc_score(y_true, scores, multi_class="ovr", labels=list(classes))
    )
    return {
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "f1": float(metrics.f1_score(y_true, y_pred, **kwargs)),
        "precision": float(metrics.precision_score(y_true, y_pred, **kwargs)),
        "recall": float(metrics.recall_score(y_true, y_pred, **kwargs)),
        "roc_auc": float(roc_auc),
    }


def regression_metrics(y_true: pd.Series, y_pred: np.ndarray[Any, Any]) -> dict[str, float]:
    """R², RMSE and MAE."""
    from sklearn import metrics

    return {
        "r2": float(metrics.r2_score(y_true, y_pred)),
        "rmse": float(np.sqrt(metrics.mean_squared_error(y_true, y_pred))),
        "mae": float(metrics.mean_absolute_error(y_true, y_pred)),
    }


def score_model(
    model: Any, inputs: pd.DataFrame, target: pd.Series, task: Task, classes: Sequence[str]
) -> dict[str, float]:
    """Every metric of `task` for a fitted model on `inputs`."""
    predictions = model.predict(inputs)
    if task == "classification":
        return classification_metrics(target, predictions, model.predict_proba(inputs), classes)
    return regression_metrics(target, predictions)
