"""Slices: each metric per group of held-out rows, the largest gap and its interval, the gate.

The groups come from the contract (`slices`), the bars from params.yaml (`evaluate.slices`).
Fairlearn's MetricFrame computes the table. Every slice metric is also a share or a mean of one
figure per row over the rows it is about (positives, for the false-negative rate): that is how
the bootstrap resamples a gap (tests/code/test_slices.py checks both give the same figures).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from .comparison import bootstrap_draws, percentile_interval
from .contract import Contract, Slice
from .errors import ProjectError
from .metrics import BINARY
from .settings import Settings

Array = np.ndarray[Any, Any]
MISSING_GROUP = "missing"


@dataclass(frozen=True)
class SliceMetric:
    """A metric as a mean of `per_row(truth, predicted)` over the rows `about(truth)` selects."""

    name: str
    about: str  # what those rows are, in "too small to judge (3 positives)"
    per_row: Callable[[Array, Array], Array]
    applies: Callable[[Array], Array]
    library: Callable[..., float]  # the same figure, as Fairlearn or scikit-learn compute it


def _everywhere(truth: Array) -> Array:
    return np.ones(len(truth), dtype=bool)


def _mean_error(truth: Array, predicted: Array) -> float:
    return float(np.mean(np.asarray(predicted, dtype=float) - np.asarray(truth, dtype=float)))


def slice_metrics(categorical: bool, classes: Sequence[str]) -> list[SliceMetric]:
    """The task's slice metrics: rates of the positive class (a binary target's last), or errors."""
    from fairlearn import metrics as fair
    from sklearn import metrics

    if not categorical:
        return [
            SliceMetric(
                "mean_absolute_error",
                "rows",
                lambda t, p: np.abs(p.astype(float) - t.astype(float)),
                _everywhere,
                metrics.mean_absolute_error,
            ),
            SliceMetric(
                "mean_error",
                "rows",
                lambda t, p: p.astype(float) - t.astype(float),
                _everywhere,
                _mean_error,
            ),
        ]
    accuracy = SliceMetric(
        "accuracy", "rows", lambda t, p: p == t, _everywhere, metrics.accuracy_score
    )
    if len(classes) != BINARY:
        return [accuracy]
    positive = classes[-1]
    return [
        SliceMetric(
            "selection_rate",
            "rows",
            lambda t, p: p == positive,
            _everywhere,
            partial(fair.selection_rate, pos_label=positive),
        ),
        SliceMetric(
            "false_positive_rate",
            "negatives",
            lambda t, p: p == positive,
            lambda t: t != positive,
            partial(fair.false_positive_rate, pos_label=positive),
        ),
        SliceMetric(
            "false_negative_rate",
            "positives",
            lambda t, p: p != positive,
            lambda t: t == positive,
            partial(fair.false_negative_rate, pos_label=positive),
        ),
        accuracy,
    ]


@dataclass(frozen=True)
class Gap:
    """The largest difference of one metric between groups large enough to judge."""

    metric: str
    judged: bool
    about: str = "rows"  # the rows a figure is over: "too small to judge (3 positives)"
    gap: float = math.nan
    low: float = math.nan
    high: float = math.nan
    highest: str = ""
    lowest: str = ""
    bar: float | None = None
    note: str = ""

    @property
    def failed(self) -> bool:
        """The whole interval is above the bar: the gap is not chance."""
        return self.judged and self.bar is not None and self.low > self.bar


@dataclass(frozen=True)
class SliceResult:
    """One slice: each group's size and figures (None: too small to judge), and the gaps."""

    column: str
    description: str
    groups: dict[str, dict[str, Any]]
    gaps: list[Gap] = field(default_factory=list)


def band_names(edges: Sequence[float]) -> list[str]:
    """The bands' names, in order: "below 12", "12 to 15", "15 and above"."""
    return [
        f"below {edges[0]:g}",
        *(f"{a:g} to {b:g}" for a, b in itertools.pairwise(edges)),
        f"{edges[-1]:g} and above",
    ]


def group_labels(values: pd.Series, entry: Slice) -> pd.Series:
    """Each row's group: its category, or its band; a missing value's group is "missing"."""
    if entry.bands is None:
        labels = values.astype("string")
    else:
        edges, names = entry.bands, band_names(entry.bands)
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        bands = np.searchsorted(np.asarray(edges), numbers, side="right")
        labels = pd.Series(np.asarray(names, dtype=object)[bands], index=values.index)
        labels = labels.where(~np.isnan(numbers))
    return labels.fillna(MISSING_GROUP).astype(str)


def _table(
    metrics: list[SliceMetric], truth: Array, predicted: Array, groups: pd.Series
) -> pd.DataFrame:
    from fairlearn.metrics import MetricFrame

    frame = MetricFrame(
        metrics={metric.name: metric.library for metric in metrics},
        y_true=truth,
        y_pred=predicted,
        sensitive_features=groups.to_numpy(),
    )
    table: pd.DataFrame = frame.by_group
    return table


def _denominators(metric: SliceMetric, truth: Array, groups: pd.Series) -> pd.Series:
    return pd.Series(metric.applies(truth), index=groups.index).groupby(groups).sum()


def _gap(
    metric: SliceMetric,
    values: pd.Series,
    judged: list[str],
    arrays: tuple[Array, Array, pd.Series],
    settings: Settings,
) -> Gap:
    """The gap between judged groups, and its interval: the same gap on resampled rows."""
    bar = settings.evaluate.slices.max_gap.get(metric.name)
    if len(judged) < BINARY:
        note = f"fewer than two groups have {settings.evaluate.slices.min_rows} {metric.about}"
        return Gap(metric.name, judged=False, about=metric.about, bar=bar, note=note)
    truth, predicted, groups = arrays
    figures = metric.per_row(truth, predicted).astype(float)
    wanted = metric.applies(truth)
    masks = [(groups.to_numpy() == name) & wanted for name in judged]
    resamples, confidence = settings.evaluate.bootstrap_resamples, settings.evaluate.confidence
    rng = np.random.default_rng(settings.train.seed)
    gaps = []
    for weights in bootstrap_draws(rng, len(truth), resamples):
        counts = np.stack([weights @ mask for mask in masks])
        sums = np.stack([weights @ (figures * mask) for mask in masks])
        with np.errstate(invalid="ignore", divide="ignore"):
            rates = np.where(counts > 0, sums / counts, np.nan)
        gaps.append(np.nanmax(rates, axis=0) - np.nanmin(rates, axis=0))
    low, high = percentile_interval(np.concatenate(gaps), resamples, confidence)
    shown = values[judged]
    return Gap(
        metric.name,
        judged=True,
        about=metric.about,
        gap=float(shown.max() - shown.min()),
        low=low,
        high=high,
        highest=str(shown.idxmax()),
        lowest=str(shown.idxmin()),
        bar=bar,
    )


def _one_slice(
    entry: Slice,
    metrics: list[SliceMetric],
    held_out: pd.DataFrame,
    arrays: tuple[Array, Array],
    settings: Settings,
) -> SliceResult:
    truth, predicted = arrays
    groups = group_labels(held_out[entry.column].reset_index(drop=True), entry)
    table = _table(metrics, truth, predicted, groups)
    # Bands low to high, categories sorted (Fairlearn sorts labels as text), "missing" last.
    table.index = table.index.astype(str)
    order = band_names(entry.bands) if entry.bands else sorted(set(table.index) - {MISSING_GROUP})
    table = table.loc[[name for name in [*order, MISSING_GROUP] if name in table.index]]
    sizes = groups.value_counts()
    rows: dict[str, dict[str, Any]] = {
        str(name): {"rows": int(sizes[name])} for name in table.index
    }
    gaps = []
    for metric in metrics:
        counts = _denominators(metric, truth, groups)
        judged = [
            str(name) for name in table.index if counts[name] >= settings.evaluate.slices.min_rows
        ]
        for name in table.index:
            value = float(table.loc[name, metric.name])
            rows[str(name)][metric.name] = value if str(name) in judged else None
            rows[str(name)][metric.about] = int(counts[name])
        values = table[metric.name].astype(float)
        values.index = values.index.astype(str)
        gaps.append(_gap(metric, values, judged, (truth, predicted, groups), settings))
    return SliceResult(entry.column, entry.description, rows, gaps)


def check_bars(settings: Settings, metrics: list[SliceMetric]) -> None:
    """Every bar names a slice metric of this task."""
    names = [metric.name for metric in metrics]
    for name in settings.evaluate.slices.max_gap:
        if name not in names:
            raise ProjectError(
                f"evaluate.slices.max_gap names '{name}', which is not a slice metric of this "
                f"task; fix: use one of {', '.join(names)}"
            )


def assess_slices(
    settings: Settings,
    contract: Contract,
    held_out: pd.DataFrame,
    predicted: Sequence[Any] | Array,
) -> list[SliceResult]:
    """Every contract slice on the held-out rows, given the model's answers for them in order."""
    classes = list(contract.target.allowed or [])
    metrics = slice_metrics(settings.task.prediction_is_categorical, classes)
    if not contract.slices:  # a bar without slices judges nothing (e.g. your data's contract)
        return []
    check_bars(settings, metrics)
    labels = settings.task.labels
    truth = labels(held_out[contract.target.name].reset_index(drop=True)).to_numpy()
    answers = labels(pd.Series(list(predicted))).to_numpy()
    return [
        _one_slice(entry, metrics, held_out, (truth, answers), settings)
        for entry in contract.slices
    ]


def slice_failures(results: list[SliceResult]) -> list[str]:
    """One sentence per gap whose whole interval is above its bar."""
    return [
        f"slice '{result.column}': {gap.metric} is {gap.gap:.3f} higher in '{gap.highest}' than "
        f"in '{gap.lowest}', and the whole interval ({gap.low:.3f} to {gap.high:.3f}) is above "
        f"evaluate.slices.max_gap {gap.bar}; fix: look at that group's errors and give the model "
        "more rows like them (or change the bar, saying why, in params.yaml)"
        for result in results
        for gap in result.gaps
        if gap.failed
    ]


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def as_json(results: list[SliceResult]) -> dict[str, Any]:
    """Every slice with its groups and gaps, JSON-safe (None for an undefined figure)."""
    return {
        result.column: {
            "description": result.description,
            "groups": result.groups,
            "gaps": {
                gap.metric: {key: _finite(value) for key, value in asdict(gap).items()}
                for gap in result.gaps
            },
        }
        for result in results
    }


def metric_key(*parts: str) -> str:
    """An MLflow metric name: letters, digits, `_ - . :` and spaces; `/` between the parts."""
    return "/".join(re.sub(r"[^\w.\- :]", "_", part) for part in parts)


def dvc_metrics(results: list[SliceResult]) -> dict[str, Any]:
    """The figures alone (metrics.json): each group's, and each gap with its interval."""
    return {
        result.column: {
            "groups": result.groups,
            "gaps": {
                gap.metric: {name: _finite(getattr(gap, name)) for name in ("gap", "low", "high")}
                for gap in result.gaps
            },
        }
        for result in results
    }


def mlflow_metrics(results: list[SliceResult]) -> dict[str, float]:
    """Each judged figure and each gap, as MLflow metrics under `slice/<column>/`."""
    logged = {}
    for result in results:
        for group, figures in result.groups.items():
            for gap in result.gaps:
                if figures.get(gap.metric) is not None:
                    logged[metric_key("slice", result.column, group, gap.metric)] = figures[
                        gap.metric
                    ]
        for gap in result.gaps:
            if gap.judged:
                logged[metric_key("slice", result.column, "gap", gap.metric)] = gap.gap
    return logged


def _cell(figures: dict[str, Any], metric: str, about: str) -> str:
    value = figures.get(metric)
    if value is None:
        return f"too small to judge ({figures.get(about, 0)} {about})"
    return f"{value:.3f}"


def _gap_line(metric: str, gap: dict[str, Any]) -> str:
    if not gap["judged"]:
        return f"- `{metric}`: not judged: {gap['note']}"
    interval = (
        "no interval (too few resamples held both groups)"
        if gap["low"] is None
        else f"interval {gap['low']:.3f} to {gap['high']:.3f}"
    )
    failed = gap["bar"] is not None and gap["low"] is not None and gap["low"] > gap["bar"]
    verdict = (
        "reported only (no bar)"
        if gap["bar"] is None
        else f"bar {gap['bar']:g}: {'FAIL' if failed else 'pass'}"
    )
    return (
        f"- `{metric}`: gap {gap['gap']:.3f}, highest in '{gap['highest']}', lowest in "
        f"'{gap['lowest']}'; {interval}; {verdict}"
    )


def card_section(record: dict[str, Any], settings: Settings) -> str:
    """The model card's per-slice analysis, from the version's slices.json."""
    if not record:
        return (
            "No slices: the contract names none (contract.yaml: slices), so errors were not "
            "compared between groups. Name the sensitive columns before relying on the model "
            "for decisions about people."
        )
    bars = settings.evaluate.slices
    parts = [
        f"Held-out rows grouped by the contract's slices. A figure needs {bars.min_rows} rows "
        "behind it (positives for the false-negative rate, negatives for the false-positive "
        "rate); a smaller group is shown with its size and left out of the gap. A gap is the "
        "largest difference between judged groups, with its "
        f"{settings.evaluate.confidence:.0%} interval (a seeded bootstrap over the held-out "
        "rows); evaluate fails when the whole interval is above the bar."
    ]
    for column, result in record.items():
        metrics = list(result["gaps"])
        abouts = {metric: gap["about"] for metric, gap in result["gaps"].items()}
        header = "| group | rows | " + " | ".join(f"`{m}`" for m in metrics) + " |"
        rows = [
            f"| {group} | {figures['rows']} | "
            + " | ".join(_cell(figures, m, abouts[m]) for m in metrics)
            + " |"
            for group, figures in result["groups"].items()
        ]
        gaps = [_gap_line(metric, gap) for metric, gap in result["gaps"].items()]
        parts.append(
            f"### `{column}`\n\n{result['description'] or '(no description)'}\n\n{header}\n"
            + "|---" * (len(metrics) + 2)
            + "|\n"
            + "\n".join(rows)
            + "\n\n"
            + "\n".join(gaps)
        )
    return "\n\n".join(parts)
