"""How each quality metric is computed; `task.py` says which task gates on which."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

BINARY = 2


def classification_metrics(
    y_true: pd.Series,
    y_pred: np.ndarray[Any, Any],
    scores: np.ndarray[Any, Any],
    classes: Sequence[str],
) -> dict[str, float]:
    """Accuracy, F1, precision, recall and ROC AUC; a binary target's last class is positive.

    `scores` has one column per class, in the order of `classes` (the contract's `allowed`).
    """
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
        # scikit-learn wants the labels sorted, with the score columns in that order.
        else metrics.roc_auc_score(
            y_true,
            scores[:, np.argsort(classes)],
            multi_class="ovr",
            labels=sorted(classes),
        )
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
