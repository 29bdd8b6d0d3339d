"""Metrics on bootstrap resamples, computed as draw-count weights, equal scikit-learn's on the
drawn rows: every metric of both tasks, with ties, one-class resamples and constant targets."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.task import (
    TASKS,
    Task,
)

RESAMPLES = 300


def draws(rows: int, seed: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).integers(0, rows, size=(RESAMPLES, rows))


def counts(drawn: np.ndarray[Any, Any], rows: int) -> np.ndarray[Any, Any]:
    return np.stack([np.bincount(row, minlength=rows) for row in drawn]).astype(float)


def on_drawn_rows(
    task: Task,
    metric: str,
    truth: pd.Series,
    predicted: np.ndarray[Any, Any],
    scores: np.ndarray[Any, Any] | None,
    classes: list[str],
    rows: np.ndarray[Any, Any],
) -> float:
    """What the old per-resample loop computed: scikit-learn on the drawn rows."""
    try:
        taken = None if scores is None else scores[rows]
        return task.metrics_of(truth.iloc[rows], predicted[rows], taken, classes, only=metric)[
            metric
        ]
    except ValueError:
        return math.nan


def classified(rows: int, classes: list[str], seed: int) -> tuple[pd.Series, Any, Any]:
    """Labels, predictions and probabilities rounded to one decimal, so scores tie."""
    rng = np.random.default_rng(seed)
    raw = rng.dirichlet(np.ones(len(classes)), size=rows).round(1) + 1e-3
    scores = raw / raw.sum(axis=1, keepdims=True)
    truth = pd.Series(rng.choice(classes, size=rows), index=rng.permutation(rows) + 1000)
    predicted = np.array(classes)[rng.integers(0, len(classes), rows)]
    return truth, predicted, scores


# Contract orders that are not sorted, small samples (one-class resamples), larger ones.
@pytest.mark.parametrize(
    ("classes", "rows"),
    [
        (["malignant", "benign"], 8),
        (["no", "yes"], 60),
        (["c", "a", "b"], 9),
        (["c", "a", "b"], 80),
    ],
)
@pytest.mark.parametrize("metric", list(TASKS["classification"].metrics))
# scikit-learn warns on a one-class resample (NaN): expected here, it is what is compared.
@pytest.mark.filterwarnings("ignore:Only one class is present")
def test_resampled_classification_metrics_equal_scikit_learns(
    metric: str, classes: list[str], rows: int
) -> None:
    task = TASKS["classification"]
    truth, predicted, scores = classified(rows, classes, seed=rows)
    drawn = draws(rows, seed=7)
    fast = task.resampled(metric, truth, predicted, scores, classes, counts(drawn, rows))
    slow = [on_drawn_rows(task, metric, truth, predicted, scores, classes, r) for r in drawn]
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12, equal_nan=True)
    if metric == "roc_auc" and rows < 10:
        assert np.isnan(slow).any(), "the small case must hold one-class resamples"


@pytest.mark.parametrize("rows", [4, 50])
@pytest.mark.parametrize("offset", [0.0, 1e6])
@pytest.mark.parametrize("metric", list(TASKS["regression"].metrics))
def test_resampled_regression_metrics_equal_scikit_learns(
    metric: str, rows: int, offset: float
) -> None:
    task = TASKS["regression"]
    rng = np.random.default_rng(rows)
    # Few distinct values, so small resamples are constant; some predictions exact.
    truth = pd.Series(offset + rng.integers(0, 3, rows).astype(float))
    predicted = np.where(rng.random(rows) < 0.3, truth, truth + rng.normal(0, 1, rows))
    drawn = draws(rows, seed=3)
    fast = task.resampled(metric, truth, predicted, None, [], counts(drawn, rows))
    slow = [on_drawn_rows(task, metric, truth, predicted, None, [], r) for r in drawn]
    np.testing.assert_allclose(fast, slow, rtol=1e-7, atol=1e-9, equal_nan=True)
