"""How each quality metric is computed; `task.py` says which task gates on which."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

BINARY = 2


def _roc_auc(y_true: pd.Series, scores: np.ndarray[Any, Any], classes: Sequence[str]) -> float:
    from sklearn import metrics

    if len(classes) == BINARY:
        return float(metrics.roc_auc_score(y_true == classes[-1], scores[:, -1]))
    # scikit-learn wants the labels sorted, with the score columns in that order.
    return float(
        metrics.roc_auc_score(
            y_true, scores[:, np.argsort(classes)], multi_class="ovr", labels=sorted(classes)
        )
    )


def classification_metrics(
    y_true: pd.Series,
    y_pred: np.ndarray[Any, Any],
    scores: np.ndarray[Any, Any],
    classes: Sequence[str],
    only: str | None = None,
) -> dict[str, float]:
    """Accuracy, F1, precision, recall and ROC AUC (or `only` one).

    A binary target's last class is positive. `scores` has one column per class, in the order
    of `classes` (the contract's `allowed`).
    """
    from sklearn import metrics

    binary = len(classes) == BINARY
    kwargs: dict[str, Any] = {"average": "binary" if binary else "macro", "zero_division": 0}
    if binary:
        kwargs["pos_label"] = classes[-1]
    compute: dict[str, Callable[[], float]] = {
        "accuracy": lambda: metrics.accuracy_score(y_true, y_pred),
        "f1": lambda: metrics.f1_score(y_true, y_pred, **kwargs),
        "precision": lambda: metrics.precision_score(y_true, y_pred, **kwargs),
        "recall": lambda: metrics.recall_score(y_true, y_pred, **kwargs),
        "roc_auc": lambda: _roc_auc(y_true, scores, classes),
    }
    names = [only] if only is not None else list(compute)
    return {name: float(compute[name]()) for name in names}


def regression_metrics(
    y_true: pd.Series, y_pred: np.ndarray[Any, Any], only: str | None = None
) -> dict[str, float]:
    """R², RMSE and MAE (or `only` one)."""
    from sklearn import metrics

    compute: dict[str, Callable[[], float]] = {
        "r2": lambda: metrics.r2_score(y_true, y_pred),
        "rmse": lambda: np.sqrt(metrics.mean_squared_error(y_true, y_pred)),
        "mae": lambda: metrics.mean_absolute_error(y_true, y_pred),
    }
    names = [only] if only is not None else list(compute)
    return {name: float(compute[name]()) for name in names}
