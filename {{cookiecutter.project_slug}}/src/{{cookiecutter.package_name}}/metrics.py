"""How each quality metric is computed; `task.py` says which task gates on which."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the service imports this module; pandas stays out of it
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


# The same metrics on many bootstrap resamples at once. A resample is a row of `weights`: how
# many times it drew each row. Scoring a resample with those counts as weights gives the figure
# scikit-learn gives on the drawn rows (tests/code/test_metrics.py checks it), without ~1 ms of
# input checks per call: a 1,000-resample interval takes milliseconds, not seconds.

Weights = np.ndarray[Any, Any]


def _share(numerator: np.ndarray[Any, Any], denominator: np.ndarray[Any, Any]) -> Any:
    """The share, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, 0.0)


def _binary_auc(
    positive: np.ndarray[Any, Any], score: np.ndarray[Any, Any], weights: Weights
) -> Any:
    """Weighted ROC AUC per resample: the chance a positive outranks a negative, ties half.

    NaN where a resample holds one class only (scikit-learn raises there).
    """
    order = np.argsort(score, kind="stable")
    ranked = score[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    drawn = weights[:, order]
    pos = np.add.reduceat(drawn * positive[order], starts, axis=1)
    neg = np.add.reduceat(drawn * ~positive[order], starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    wins = (pos * (below + neg / 2)).sum(axis=1)
    return np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1.0), np.nan)


def _resampled_auc(
    y_true: np.ndarray[Any, Any],
    scores: np.ndarray[Any, Any],
    classes: Sequence[str],
    weights: Weights,
) -> Any:
    if len(classes) == BINARY:
        return _binary_auc(y_true == classes[-1], scores[:, -1], weights)
    # One-vs-rest, unweighted mean over the classes: NaN when any class is missing.
    per_class = [_binary_auc(y_true == c, scores[:, i], weights) for i, c in enumerate(classes)]
    return np.mean(per_class, axis=0)


def _counts(
    y_true: np.ndarray[Any, Any], y_pred: np.ndarray[Any, Any], label: str, weights: Weights
) -> tuple[Any, Any, Any]:
    """Weighted true positives, false positives and false negatives of `label` per resample."""
    truth, said = y_true == label, y_pred == label
    return weights @ (truth & said), weights @ (~truth & said), weights @ (truth & ~said)


def _resampled_label_metric(
    metric: str,
    y_true: np.ndarray[Any, Any],
    y_pred: np.ndarray[Any, Any],
    classes: Sequence[str],
    weights: Weights,
) -> Any:
    """Precision, recall or F1: the last class's when binary, else the macro mean.

    The macro mean is over the classes a resample holds (true or predicted), as scikit-learn's.
    """
    labels = [classes[-1]] if len(classes) == BINARY else list(classes)
    figures, present = [], []
    for label in labels:
        tp, fp, fn = _counts(y_true, y_pred, label, weights)
        denominator = {"precision": tp + fp, "recall": tp + fn, "f1": 2 * tp + fp + fn}[metric]
        figures.append(_share((2 if metric == "f1" else 1) * tp, denominator))
        present.append(tp + fp + fn > 0)
    if len(classes) == BINARY:
        return figures[0]
    held = np.array(present)
    return (np.array(figures) * held).sum(axis=0) / np.maximum(held.sum(axis=0), 1)


def resampled_classification_metric(
    metric: str,
    y_true: pd.Series,
    y_pred: np.ndarray[Any, Any],
    scores: np.ndarray[Any, Any],
    classes: Sequence[str],
    weights: Weights,
) -> np.ndarray[Any, Any]:
    """`metric` on each resample (a row of `weights`), as `classification_metrics` would give."""
    truth, predicted = np.asarray(y_true), np.asarray(y_pred)
    if metric == "roc_auc":
        return np.asarray(_resampled_auc(truth, scores, classes, weights), dtype=float)
    if metric == "accuracy":
        return np.asarray((weights @ (truth == predicted)) / weights.sum(axis=1), dtype=float)
    return np.asarray(
        _resampled_label_metric(metric, truth, predicted, classes, weights), dtype=float
    )


def resampled_regression_metric(
    metric: str, y_true: pd.Series, y_pred: np.ndarray[Any, Any], weights: Weights
) -> np.ndarray[Any, Any]:
    """`metric` on each resample (a row of `weights`), as `regression_metrics` would give."""
    truth = np.asarray(y_true, dtype=float)
    errors = np.asarray(y_pred, dtype=float) - truth
    total = weights.sum(axis=1)
    if metric == "mae":
        return np.asarray((weights @ np.abs(errors)) / total)
    squared = (weights @ errors**2) / total
    if metric == "rmse":
        return np.asarray(np.sqrt(squared))
    # Centred first, so a large offset (prices, timestamps) does not cancel the spread away.
    centred = truth - truth.mean()
    spread = (weights @ centred**2) / total - ((weights @ centred) / total) ** 2
    drawn = weights > 0
    # scikit-learn's r2_score where the drawn truth is constant: 1 for a perfect fit, else 0.
    constant = np.where(drawn, truth, np.inf).min(axis=1) == np.where(drawn, truth, -np.inf).max(
        axis=1
    )
    perfect = np.where(drawn, np.abs(errors), 0.0).max(axis=1) == 0
    r2 = 1 - squared / np.where(constant, 1.0, spread)
    return np.asarray(np.where(constant, perfect.astype(float), r2))
