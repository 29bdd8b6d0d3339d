"""Slices: Fairlearn's table and the bootstrap's per-row figures agree, the gate fails a planted
bias and passes fair answers, and a wrong slice or bar is refused with the field named."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.bundle import model_inputs
from {{ cookiecutter.package_name }}.contract import Contract, Slice
from {{ cookiecutter.package_name }}.errors import ProjectError
from {{ cookiecutter.package_name }}.rows import evaluation_split
from {{ cookiecutter.package_name }}.settings import Settings, SliceSettings
from {{ cookiecutter.package_name }}.slices import (
    assess_slices,
    group_labels,
    slice_failures,
    slice_metrics,
)
from {{ cookiecutter.package_name }}.train import build_pipeline, make_estimator


def with_bars(settings: Settings, **bars: Any) -> Settings:
    evaluate = settings.evaluate.model_copy(update={"slices": SliceSettings(**bars)})
    return settings.model_copy(update={"evaluate": evaluate})


def some_slice(contract: Contract, sample: pd.DataFrame) -> Contract:
    """The contract's slices, or one on the first feature when it names none (your data): a
    number is cut at its median (above it, when most rows hold the lowest value), so each
    group holds a good share of the rows."""
    if contract.slices:
        return contract
    first = contract.features[0]
    bands = None
    if first.is_numeric:
        values = sample[first.name].astype(float).dropna()
        cut = float(values.median())
        bands = [cut if (values < cut).any() else float(values[values > cut].min())]
    entry = Slice(column=first.name, bands=bands)
    return contract.model_copy(update={"slices": [entry]})


def test_the_table_agrees_with_the_per_row_figures(
    settings: Settings, contract: Contract, sample: pd.DataFrame, fitted_pipeline: Any
) -> None:
    contract = some_slice(contract, sample)
    answers = settings.task.predict_arrays(fitted_pipeline, model_inputs(sample, contract)).values
    results = assess_slices(with_bars(settings, min_rows=1), contract, sample, answers)
    classes = list(contract.target.allowed or [])
    metrics = slice_metrics(settings.task.prediction_is_categorical, classes)
    truth = settings.task.labels(sample[contract.target.name].reset_index(drop=True)).to_numpy()
    predicted = settings.task.labels(pd.Series(list(answers))).to_numpy()
    for entry, result in zip(contract.slices, results, strict=True):
        groups = group_labels(sample[entry.column].reset_index(drop=True), entry).to_numpy()
        assert sum(figures["rows"] for figures in result.groups.values()) == len(sample)
        for name, figures in result.groups.items():
            for metric in metrics:
                rows = (groups == name) & metric.applies(truth)
                if figures[metric.name] is None:
                    continue  # no row behind it
                expected = metric.per_row(truth[rows], predicted[rows]).astype(float).mean()
                assert figures[metric.name] == pytest.approx(expected, abs=1e-9)


def planted(settings: Settings, contract: Contract, sample: pd.DataFrame) -> tuple[Any, Any, str]:
    """Perfect answers, and the same answers wrong on the first slice's largest group."""
    entry = contract.slices[0]
    groups = group_labels(sample[entry.column].reset_index(drop=True), entry)
    victim = str(groups.value_counts().idxmax())
    truth = sample[contract.target.name].reset_index(drop=True)
    if settings.task.prediction_is_categorical:
        classes = list(contract.target.allowed or [])
        # Another class everywhere in the group: a binary target's positives all missed.
        wrong = truth.astype(str).map(lambda label: classes[(classes.index(label) + 1) % 2])
    else:
        wrong = truth.astype(float) + 10 * truth.astype(float).std()
    biased = truth.where(groups != victim, wrong)
    return truth.to_numpy(), biased.to_numpy(), victim


def test_the_gate_fails_a_planted_bias_and_passes_fair_answers(
    settings: Settings, contract: Contract, sample: pd.DataFrame
) -> None:
    contract = some_slice(contract, sample)
    metric = "accuracy" if settings.task.prediction_is_categorical else "mean_absolute_error"
    bar = (
        0.3
        if settings.task.prediction_is_categorical
        else float(sample[contract.target.name].astype(float).std())
    )
    gated = with_bars(settings, min_rows=5, max_gap={metric: bar})
    fair, biased, victim = planted(settings, contract, sample)
    assert slice_failures(assess_slices(gated, contract, sample, fair)) == []
    (failure,) = [
        line
        for line in slice_failures(assess_slices(gated, contract, sample, biased))
        if f"slice '{contract.slices[0].column}'" in line and metric in line
    ]
    assert f"'{victim}'" in failure
    assert "evaluate.slices.max_gap" in failure


def test_the_gate_fails_a_model_trained_to_be_wrong_on_one_group(
    settings: Settings, contract: Contract, sample: pd.DataFrame
) -> None:
    """A real model, trained where the slice column leaks a wrong target for one group, fails
    the gate on held-out rows it never saw, naming that group; the same model trained on the
    true target has a smaller gap."""
    contract = some_slice(contract, sample)
    training, held_out = evaluation_split(sample, settings, contract)
    target = contract.target.name
    truth, wrong, victim = planted(settings, contract, training)
    labels = settings.task.labels
    true_rows = training.assign(**{target: labels(pd.Series(truth)).to_numpy()})
    biased_rows = training.assign(**{target: labels(pd.Series(wrong)).to_numpy()})
    # Trees learn a band or a category's own answer; a linear model would spread the error.
    categorical = settings.task.prediction_is_categorical
    metric = "accuracy" if categorical else "mean_absolute_error"
    bar = 0.3 if categorical else float(sample[target].astype(float).std())
    gated = with_bars(settings, min_rows=5, max_gap={metric: bar})
    inputs = model_inputs(held_out, contract)

    def gap_of(rows: pd.DataFrame) -> tuple[float, list[str]]:
        estimator = make_estimator(settings.task, "gradient_boosting", {}, settings.train.seed)
        model = build_pipeline(contract, estimator).fit(model_inputs(rows, contract), rows[target])
        answers = settings.task.predict_arrays(model, inputs).values
        (result, *_) = assess_slices(gated, contract, held_out, answers)
        (gap,) = [gap for gap in result.gaps if gap.metric == metric]
        return gap.gap, slice_failures([result])

    biased_gap, failures = gap_of(biased_rows)
    (failure,) = [line for line in failures if metric in line]
    assert f"'{victim}'" in failure
    fair_gap, _ = gap_of(true_rows)
    assert fair_gap < biased_gap


def test_a_small_group_is_reported_not_judged(
    settings: Settings, contract: Contract, sample: pd.DataFrame
) -> None:
    contract = some_slice(contract, sample)
    fair, _, _ = planted(settings, contract, sample)
    (result, *_) = assess_slices(with_bars(settings, min_rows=10**6), contract, sample, fair)
    assert all(not gap.judged and "fewer than two groups" in gap.note for gap in result.gaps)
    assert all(figures["rows"] > 0 for figures in result.groups.values())
    metric_names = [gap.metric for gap in result.gaps]
    assert all(figures[m] is None for figures in result.groups.values() for m in metric_names)


def test_a_bar_on_an_unknown_metric_is_refused(
    settings: Settings, contract: Contract, sample: pd.DataFrame
) -> None:
    gated = with_bars(settings, max_gap={"auc": 0.1})
    with pytest.raises(ProjectError, match=r"evaluate.slices.max_gap names 'auc'.*fix: use one of"):
        assess_slices(gated, some_slice(contract, sample), sample, [])


def test_bands_name_each_range_and_missing_values() -> None:
    entry = Slice(column="x", bands=[12, 15])
    values = pd.Series([3.0, 12.0, 14.9, 15.0, None, 99.0])
    assert group_labels(values, entry).tolist() == [
        "below 12",
        "12 to 15",
        "12 to 15",
        "15 and above",
        "missing",
        "15 and above",
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"column": "no_such_column"}, "slice 'no_such_column' is not a feature"),
        ({"column": "size"}, "is numeric; fix: give its bands"),
        ({"column": "size", "bands": [3, 1]}, "bands must be ascending"),
        ({"column": "kind", "bands": [1]}, "is a category: one group per value"),
    ],
)
def test_a_wrong_slice_is_refused_with_the_fix(entry: dict[str, Any], message: str) -> None:
    # A contract of its own: the sample's may lack a category (or a numeric) column.
    raw = {
        "name": "toy",
        "target": {"name": "label", "type": "category", "allowed": ["no", "yes"]},
        "features": [
            {"name": "size", "type": "float", "min": 0, "max": 10},
            {"name": "kind", "type": "category", "allowed": ["a", "b"]},
        ],
        "slices": [entry],
    }
    with pytest.raises(ValueError, match=message):
        Contract.model_validate(raw)


def test_slice_metrics_are_shares_or_means_of_a_row_figure() -> None:
    truth = np.array(["b", "m", "m", "b"])
    predicted = np.array(["m", "m", "b", "b"])
    by_name = {metric.name: metric for metric in slice_metrics(True, ["b", "m"])}
    fnr = by_name["false_negative_rate"]
    rows = fnr.applies(truth)
    assert fnr.per_row(truth[rows], predicted[rows]).mean() == 0.5
    assert fnr.library(truth, predicted) == 0.5
