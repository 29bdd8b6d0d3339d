"""Bootstrap intervals: one scikit-learn call per resample vs all resamples at once, side by side.

Run inside a baked project's environment (its package does the scoring):

    build/demo/my-ml-service/.venv/bin/python benchmarks/bootstrap_probe.py my_ml_service

For each task's gate metric and a held-out set of 114 and 1,000 rows, times `RESAMPLES`
resamples scored the old way (scikit-learn on the drawn rows, a call per resample) and the
project's way (`Task.resampled`: draw counts as weights, numpy), alternating, median of
`ROUNDS`; prints both, the ratio and the largest difference between the two sets of figures.
"""

from __future__ import annotations

import importlib
import math
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

RESAMPLES = 1000
ROUNDS = 3
CASES = [("classification", "roc_auc"), ("classification", "f1"), ("regression", "r2")]


Case = tuple[pd.Series, Any, Any, list[str]]


def data(task: str, rows: int) -> Case:
    """A seeded held-out set: truth, predictions and (for classes) probabilities."""
    rng = np.random.default_rng(rows)
    if task == "regression":
        truth = rng.normal(150, 75, rows)
        return pd.Series(truth), truth + rng.normal(0, 50, rows), None, []
    classes = ["malignant", "benign"]
    positive = rng.random(rows)
    truth = np.where(rng.random(rows) < positive, classes[1], classes[0])
    scores = np.column_stack([1 - positive, positive])
    return pd.Series(truth), np.where(positive > 0.5, classes[1], classes[0]), scores, classes


def per_call(task: Any, metric: str, case: Case, drawn: np.ndarray[Any, Any]) -> Any:
    """The old way: scikit-learn on each resample's drawn rows."""
    truth, predicted, scores, classes = case
    figures = []
    for row in drawn:
        taken = None if scores is None else scores[row]
        figures.append(task.metrics_of(truth.iloc[row], predicted[row], taken, classes, metric))
    return np.asarray([figure[metric] for figure in figures])


def at_once(task: Any, metric: str, case: Case, drawn: np.ndarray[Any, Any]) -> Any:
    """The project's way: each resample's draw counts as weights."""
    truth, predicted, scores, classes = case
    rows = len(truth)
    weights = np.stack([np.bincount(row, minlength=rows) for row in drawn]).astype(float)
    return np.asarray(task.resampled(metric, truth, predicted, scores, classes, weights))


def main(package: str) -> None:
    tasks = importlib.import_module(f"{package}.task").TASKS
    print(f"{'case':<31} {'per call':>10} {'at once':>10} {'ratio':>8} {'max |diff|':>11}")
    for name, metric in CASES:
        for rows in (114, 1000):
            case = data(name, rows)
            drawn = np.random.default_rng(0).integers(0, rows, size=(RESAMPLES, rows))
            times: dict[Callable[..., Any], list[float]] = {per_call: [], at_once: []}
            figures = {}
            for _ in range(ROUNDS):
                for way, spent in times.items():
                    start = time.perf_counter()
                    figures[way] = way(tasks[name], metric, case, drawn)
                    spent.append(time.perf_counter() - start)
            slow, fast = (statistics.median(times[way]) for way in (per_call, at_once))
            difference = float(np.nanmax(np.abs(figures[per_call] - figures[at_once])))
            print(
                f"{name:<14} {metric:<7} {rows:>4} rows {slow:>9.3f}s {fast:>9.4f}s "
                f"{slow / fast:>7.0f}x {difference if math.isfinite(difference) else 0.0:>11.1e}"
            )


if __name__ == "__main__":
    main(sys.argv[1])
