"""Two models on the same rows: both figures, the gain and its paired-bootstrap interval.

The promotion gate decides on this, never on figures from different rows: each bootstrap
resample draws rows (with replacement, seeded) and scores both models on exactly those rows,
so the interval reflects how much the gain depends on which rows happened to be held out.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from .task import Task

Array = np.ndarray[Any, Any]
# Below this share of resamples with a computable metric, the interval means nothing.
MIN_VALID_SHARE = 0.9


@dataclass(frozen=True)
class Scored:
    """A model's answers on the rows: predicted values and, for classes, probabilities."""

    predicted: Array
    scores: Array | None


def score_rows(task: Task, model: Any, inputs: pd.DataFrame, classes: Sequence[str]) -> Scored:
    """What `model` answers on `inputs`, kept for scoring any subset of the rows."""
    return Scored(np.asarray(model.predict(inputs)), task.scores(model, inputs, classes))


@dataclass(frozen=True)
class PairedComparison:
    """Champion and challenger on the same rows: both figures, the gain, its interval."""

    metric: str
    rows: int
    rows_sha256: str
    champion: float
    challenger: float
    # The challenger's advantage in the metric's units, positive when it is better (for an
    # error metric such as RMSE: champion minus challenger).
    gain: float
    low: float
    high: float
    confidence: float
    resamples: int

    def better_by(self, margin: float) -> bool:
        """Whether the whole interval of the gain lies above `margin`."""
        return math.isfinite(self.low) and self.low > margin

    def describe(self) -> str:
        """The figures in one sentence."""
        return (
            f"{self.metric} on the same {self.rows} held-out rows: champion {self.champion:.4f}, "
            f"challenger {self.challenger:.4f}; gain {self.gain:+.4f}, "
            f"{self.confidence:.0%} interval [{self.low:+.4f}, {self.high:+.4f}] "
            f"({self.resamples} paired bootstrap resamples)"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def rows_digest(keys: Sequence[str]) -> str:
    """One hash for a set of row keys: two figures with the same digest scored the same rows."""
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()


def paired_bootstrap(
    task: Task,
    metric: str,
    target: pd.Series,
    champion: Scored,
    challenger: Scored,
    classes: Sequence[str],
    *,
    resamples: int,
    confidence: float,
    seed: int,
    rows_sha256: str = "",
) -> PairedComparison:
    """Both models' `metric` on the rows, and a percentile interval of the challenger's gain."""
    sign = 1.0 if task.higher_is_better(metric) else -1.0
    truth = target.reset_index(drop=True)

    def on_all(scored: Scored) -> float:
        return task.metrics_of(truth, scored.predicted, scored.scores, classes, only=metric)[metric]

    on_champion, on_challenger = on_all(champion), on_all(challenger)
    rng = np.random.default_rng(seed)
    gains = np.concatenate(
        [
            sign
            * (
                _resampled(task, metric, truth, challenger, classes, weights)
                - _resampled(task, metric, truth, champion, classes, weights)
            )
            for weights in bootstrap_draws(rng, len(truth), resamples)
        ]
    )
    low, high = percentile_interval(gains, resamples, confidence)
    return PairedComparison(
        metric=metric,
        rows=len(truth),
        rows_sha256=rows_sha256,
        champion=on_champion,
        challenger=on_challenger,
        gain=sign * (on_challenger - on_champion),
        low=low,
        high=high,
        confidence=confidence,
        resamples=resamples,
    )


ACTUAL = "actual"
SCORE_PREFIX = "p_"


def outputs_frame(target: pd.Series, scored: Scored, classes: Sequence[str]) -> pd.DataFrame:
    """A model's answers beside the truth, one row each: what later checks resample."""
    frame = pd.DataFrame({ACTUAL: target.to_numpy(), "prediction": scored.predicted})
    if scored.scores is not None:
        for index, label in enumerate(classes):
            frame[SCORE_PREFIX + label] = scored.scores[:, index]
    return frame


def from_outputs(
    frame: pd.DataFrame, task: Task, classes: Sequence[str]
) -> tuple[pd.Series, Scored]:
    """`outputs_frame` read back: the truth and the answers, typed for the task's metrics."""
    columns = [SCORE_PREFIX + label for label in classes]
    scores = frame[columns].to_numpy(dtype=float) if classes else None
    predicted = task.labels(frame["prediction"]).to_numpy()
    return task.labels(frame[ACTUAL]).reset_index(drop=True), Scored(predicted, scores)


def drop_interval(
    task: Task,
    metric: str,
    reference: tuple[pd.Series, Scored],
    current: tuple[pd.Series, Scored],
    classes: Sequence[str],
    *,
    resamples: int,
    confidence: float,
    seed: int,
) -> tuple[float, float]:
    """The interval of `metric`'s relative drop from `reference` rows to `current` rows.

    Unpaired bootstrap: each resample draws both row sets again (seeded), so the interval holds
    the noise of both figures, the window's and the evaluation's.
    """
    rng = np.random.default_rng(seed)
    (ref_truth, ref_scored), (cur_truth, cur_scored) = reference, current
    drops: list[float] = []
    # One generator, chunks drawn alternately: the same seed gives the same interval.
    for ref_weights, cur_weights in zip(
        bootstrap_draws(rng, len(ref_truth), resamples),
        bootstrap_draws(rng, len(cur_truth), resamples),
        strict=True,
    ):
        before = _resampled(task, metric, ref_truth, ref_scored, classes, ref_weights)
        after = _resampled(task, metric, cur_truth, cur_scored, classes, cur_weights)
        drops += [
            task.relative_drop(metric, now, then) for now, then in zip(after, before, strict=True)
        ]
    return percentile_interval(np.asarray(drops), resamples, confidence)


# Resamples weighed at once: a chunk holds CHUNK x rows draw counts in memory.
CHUNK = 100


def bootstrap_draws(rng: np.random.Generator, rows: int, resamples: int) -> Iterator[Array]:
    """Bootstrap resamples of `rows` rows as draw counts, one resample per row, a chunk at a time.

    Scoring with the counts as weights is scoring the drawn rows (see metrics.py).
    """
    for start in range(0, resamples, CHUNK):
        count = min(CHUNK, resamples - start)
        drawn = rng.integers(0, rows, size=(count, rows)) + rows * np.arange(count)[:, None]
        yield np.bincount(drawn.ravel(), minlength=count * rows).reshape(count, rows).astype(float)


def _resampled(
    task: Task,
    metric: str,
    truth: pd.Series,
    scored: Scored,
    classes: Sequence[str],
    weights: Array,
) -> Array:
    """`metric` of the answers on each resample (a row of `weights`); NaN where undefined."""
    return task.resampled(metric, truth, scored.predicted, scored.scores, classes, weights)


def percentile_interval(values: Array, resamples: int, confidence: float) -> tuple[float, float]:
    """The two-sided `confidence` percentile interval of the finite resampled `values`.

    NaN when too few resamples gave one.
    """
    valid = values[np.isfinite(values)]
    if len(valid) < MIN_VALID_SHARE * resamples:
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    return float(np.quantile(valid, tail)), float(np.quantile(valid, 1 - tail))
