"""The model card: its intervals hold their figures, its error counts add up, and the card and
its HTML page carry every section of "Model Cards for Model Reporting" with the contract's words."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.bundle import model_inputs
from {{ cookiecutter.package_name }}.card import analysis, card_html, model_card
from {{ cookiecutter.package_name }}.comparison import Scored, score_rows
from {{ cookiecutter.package_name }}.contract import CardText, Contract
from {{ cookiecutter.package_name }}.settings import Settings

SECTIONS = (
    "Model details",
    "Intended use",
    "Factors",
    "Metrics",
    "Evaluation data",
    "Training data",
    "Quantitative analyses per slice",
    "Behavioural tests",
    "Ethical considerations",
    "Caveats and recommendations",
)


def scored_sample(
    settings: Settings, contract: Contract, sample: pd.DataFrame, model: Any
) -> tuple[dict[str, float], pd.Series, Scored]:
    classes = list(contract.target.allowed or [])
    inputs, truth = model_inputs(sample, contract), sample[contract.target.name]
    metrics = settings.task.score(model, inputs, truth, classes)
    return metrics, truth, score_rows(settings.task, model, inputs, classes)


def test_each_interval_holds_its_figure_and_is_seeded(
    settings: Settings, contract: Contract, sample: pd.DataFrame, fitted_pipeline: Any
) -> None:
    metrics, truth, scored = scored_sample(settings, contract, sample, fitted_pipeline)
    facts = analysis(settings, contract, metrics, (truth, scored), truth)
    assert facts == analysis(settings, contract, metrics, (truth, scored), truth)
    assert set(facts["intervals"]) == set(metrics)
    for metric, value in metrics.items():
        interval = facts["intervals"][metric]
        assert interval["low"] is not None, metric
        assert interval["low"] - 1e-9 <= value <= interval["high"] + 1e-9, (metric, interval)
    assert facts["rows"] == facts["composition"]["held_out"]["rows"] == len(sample)


def test_the_errors_add_up(
    settings: Settings, contract: Contract, sample: pd.DataFrame, fitted_pipeline: Any
) -> None:
    metrics, truth, scored = scored_sample(settings, contract, sample, fitted_pipeline)
    errors = analysis(settings, contract, metrics, (truth, scored), truth)["errors"]
    if not settings.task.prediction_is_categorical:
        residuals = np.asarray(scored.predicted, dtype=float) - truth.to_numpy(dtype=float)
        assert errors["mean_error"] == pytest.approx(residuals.mean())
        assert errors["median_absolute_error"] <= errors["p90_absolute_error"]
        assert errors["p90_absolute_error"] <= errors["max_absolute_error"]
        return
    confusion = errors["confusion"]
    assert sum(sum(row.values()) for row in confusion.values()) == len(sample)
    correct = sum(confusion[label][label] for label in confusion)
    assert correct / len(sample) == pytest.approx(metrics["accuracy"])
    if "positive" in errors:  # a binary target: the false-negative rate is what recall misses
        assert errors["false_negative_rate"] == pytest.approx(1 - metrics["recall"])


def card_for(settings: Settings, contract: Contract, metrics: dict[str, float]) -> str:
    """The card as `promote` writes it, from a version's recorded figures."""
    run = SimpleNamespace(
        data=SimpleNamespace(params={"train_rows": "300", "test_rows": "100"}, tags={}),
        info=SimpleNamespace(start_time=0),
    )
    metadata = {
        "model_name": "demo",
        "version": "2",
        "alias": "champion",
        "task": str(settings.task),
        "run_id": "0" * 32,
        "model_sha256": "f" * 64,
        "metrics": metrics,
        "baseline": dict.fromkeys(metrics, 0.0),
        "promotion": {
            "replaced": "1",
            "message": "v2 is the new champion: better",
            "decided_at": "now",
        },
    }
    behavioural = [{"kind": "invariance", "name": "noise", "passed": True, "detail": "ok"}]
    return model_card(settings, metadata, run, behavioural, contract)


def test_the_card_has_every_section_and_the_contracts_words(
    settings: Settings, contract: Contract, sample: pd.DataFrame, fitted_pipeline: Any
) -> None:
    metrics, _, _ = scored_sample(settings, contract, sample, fitted_pipeline)
    words = CardText(
        citation="A. Author, The data, 2020.",
        intended_use="Ranking records for a human to review.",
        out_of_scope=["Decisions without a human"],
        ethical_considerations=["Errors may fall more on one group"],
        caveats=["Small data"],
    )
    card = card_for(settings, contract.model_copy(update={"model_card": words}), metrics)
    for heading in SECTIONS:
        assert f"\n## {heading}\n" in card, heading
        body = card.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
        assert body.strip(), heading
    for text in (words.citation, words.intended_use, *words.out_of_scope, *words.caveats):
        assert text in card
    assert "Replaces: v1, the champion until this promotion" in card
    assert "not stated" not in card


def test_a_contract_without_the_words_says_what_to_add(
    settings: Settings, contract: Contract, sample: pd.DataFrame, fitted_pipeline: Any
) -> None:
    metrics, _, _ = scored_sample(settings, contract, sample, fitted_pipeline)
    card = card_for(settings, contract.model_copy(update={"model_card": CardText()}), metrics)
    for key in ("citation", "intended_use", "ethical_considerations"):
        assert f"add `model_card.{key}` to contract.yaml" in card


def test_the_html_page_renders_tables_and_escapes_markup() -> None:
    page = card_html("# Card: demo v1\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n<script>x()</script>\n")
    assert "<title>Card: demo v1</title>" in page
    assert "<table>" in page
    assert "<td>2</td>" in page
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
