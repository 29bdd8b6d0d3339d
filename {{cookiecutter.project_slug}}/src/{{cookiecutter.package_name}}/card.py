"""The model card: what `evaluate` records for it, and the card `promote` writes from it.

The sections follow Mitchell et al., "Model Cards for Model Reporting" (2019). The figures come
from the run (held-out metrics with bootstrap intervals, errors, the data's composition, slices,
behavioural tests, the promotion gate's decision); the words no run can know (citation,
intended and out-of-scope uses, ethical considerations, caveats) from the contract's
`model_card`. Rendered as Markdown and as a self-contained HTML page (no script, no network).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from .comparison import Scored, bootstrap_draws, percentile_interval
from .contract import Contract
from .metrics import BINARY
from .settings import Settings
from .slices import card_section


def _finite(value: float) -> float | None:
    """JSON has no NaN: an undefined figure is null."""
    return float(value) if math.isfinite(value) else None


def metric_intervals(
    settings: Settings, names: Sequence[str], truth: pd.Series, scored: Scored, classes: list[str]
) -> dict[str, dict[str, float | None]]:
    """Each metric's percentile interval: a seeded bootstrap over the held-out rows.

    Every metric is scored on the same resamples (the generator is re-seeded per metric), one
    chunk of draws at a time, so memory stays bounded on a large held-out set.
    """
    task, evaluate = settings.task, settings.evaluate
    truth = truth.reset_index(drop=True)
    intervals = {}
    for metric in names:
        rng = np.random.default_rng(settings.train.seed)
        values = np.concatenate(
            [
                task.resampled(metric, truth, scored.predicted, scored.scores, classes, weights)
                for weights in bootstrap_draws(rng, len(truth), evaluate.bootstrap_resamples)
            ]
        )
        low, high = percentile_interval(values, evaluate.bootstrap_resamples, evaluate.confidence)
        intervals[metric] = {"low": _finite(low), "high": _finite(high)}
    return intervals


def _errors(
    categorical: bool, truth: pd.Series, predicted: Any, classes: list[str]
) -> dict[str, Any]:
    """Where the model errs: confusion counts (and a binary target's error rates), or residuals."""
    if not categorical:
        errors = np.asarray(predicted, dtype=float) - truth.to_numpy(dtype=float)
        absolute = np.abs(errors)
        return {
            "mean_error": float(errors.mean()),
            "median_absolute_error": float(np.median(absolute)),
            "p90_absolute_error": float(np.quantile(absolute, 0.9)),
            "max_absolute_error": float(absolute.max()),
        }
    actual, answered = truth.astype(str).to_numpy(), np.asarray(predicted).astype(str)
    confusion = {
        label: {other: int(np.sum((actual == label) & (answered == other))) for other in classes}
        for label in classes
    }
    result: dict[str, Any] = {"confusion": confusion}
    if len(classes) == BINARY:
        negative, positive = classes
        fn, tp = confusion[positive][negative], confusion[positive][positive]
        fp, tn = confusion[negative][positive], confusion[negative][negative]
        result["positive"] = positive
        result["false_negative_rate"] = _finite(fn / (fn + tp) if fn + tp else math.nan)
        result["false_positive_rate"] = _finite(fp / (fp + tn) if fp + tn else math.nan)
    return result


def _composition(values: pd.Series, classes: list[str]) -> dict[str, Any]:
    """Rows per class, or the target's spread."""
    if classes:
        counts = values.astype(str).value_counts()
        return {
            "rows": len(values),
            "classes": {label: int(counts.get(label, 0)) for label in classes},
        }
    numbers = values.astype(float)
    return {
        "rows": len(values),
        **{
            name: float(getattr(numbers, name)())
            for name in ("mean", "std", "min", "median", "max")
        },
    }


def analysis(
    settings: Settings,
    contract: Contract,
    metrics: dict[str, float],
    held_out: tuple[pd.Series, Scored],
    training_target: pd.Series,
) -> dict[str, Any]:
    """What the card states about the held-out rows beyond the point figures (analysis.json)."""
    truth, scored = held_out
    classes = list(contract.target.allowed or [])
    return {
        "rows": len(truth),
        "confidence": settings.evaluate.confidence,
        "resamples": settings.evaluate.bootstrap_resamples,
        "intervals": metric_intervals(settings, list(metrics), truth, scored, classes),
        "errors": _errors(
            settings.task.prediction_is_categorical, truth, scored.predicted, classes
        ),
        "composition": {
            "training": _composition(training_target, classes),
            "held_out": _composition(truth, classes),
        },
    }


CARD = """\
# Model card: {model_name} v{version} ({alias})

Written by `promote` from the registry, this version's evaluation and the data contract (its
`model_card` entry holds the words no run can know). The sections follow Mitchell et al.,
"Model Cards for Model Reporting" (2019).

## Model details

- {task} model: estimator `{estimator}` in a scikit-learn pipeline built from the data
  contract (imputation, scaling unless trees, one-hot encoding).
- Version {version} of `{model_name}`, trained {trained_at}; MLflow run `{run_id}`;
  git commit `{git_commit}`.
- Model file SHA-256: `{model_sha256}`.
- Serving runtime: {runtime}.
- Replaces: {replaces}

### Hyperparameters

{params}

### Promotion

{promotion}

## Intended use

{intended_use}

Out of scope:

{out_of_scope}

## Factors

{factors}

## Metrics

On the {test_rows} held-out rows, each with its {confidence:.0%} interval (a seeded bootstrap
of {resamples} resamples over those rows). The baseline ignores the inputs (majority class or
mean value), fitted on the same training rows and scored on the same held-out rows. The gate
asks the primary metric (`{primary_metric}`) to close at least {gain:.0%} of the gap between the
baseline and a perfect score, and every threshold to be met.

| metric | value | {confidence:.0%} interval | baseline | threshold |
|---|---|---|---|---|
{metric_rows}

{errors}

## Evaluation data

{test_rows} rows held out of `{train_path}` by a hash of each row's key (`train.test_fraction`
{test_fraction}): a row never moves between training and held-out across versions, and copies
of a row never sit on both sides. {held_out}

## Training data

`{train_path}`, DVC/MD5 `{data_md5}`: {train_rows} rows for training. {training}

Dataset `{data_name}`: {about}

Citation: {citation}

Target `{target}`; the columns, from the data contract:

{columns}

## Quantitative analyses per slice

{slices}

## Feature attributions

{attributions}

## Behavioural tests

| kind | test | result | detail |
|---|---|---|---|
{behaviour_rows}

## Ethical considerations

{ethics}

## Caveats and recommendations

{caveats}
"""

NOT_STATED = "(not stated: add `model_card.{key}` to contract.yaml)"


def _bullets(items: Sequence[str], key: str) -> str:
    return "\n".join(f"- {item}" for item in items) if items else f"- {NOT_STATED.format(key=key)}"


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _metric_rows(settings: Settings, metadata: dict[str, Any]) -> str:
    thresholds, baseline = settings.evaluate.thresholds, metadata.get("baseline", {})
    intervals = metadata.get("analysis", {}).get("intervals", {})
    rows = []
    for metric, value in metadata["metrics"].items():
        interval = intervals.get(metric, {})
        low, high = interval.get("low"), interval.get("high")
        span = "n/a" if low is None or high is None else f"{low:.4f} to {high:.4f}"
        rows.append(
            f"| {metric} | {value:.4f} | {span} | {baseline.get(metric, float('nan')):.4f} "
            f"| {thresholds.get(metric, '-')} |"
        )
    return "\n".join(rows)


def _errors_text(errors: dict[str, Any]) -> str:
    """The confusion counts (with a binary target's error rates), or the residuals."""
    if not errors:
        return "Errors: not recorded (evaluated before the card recorded them)."
    if "confusion" not in errors:
        return (
            f"Errors (predicted minus actual): mean {errors['mean_error']:+.4g} (a bias when far "
            f"from 0), median absolute {errors['median_absolute_error']:.4g}, 90th percentile "
            f"absolute {errors['p90_absolute_error']:.4g}, "
            f"largest {errors['max_absolute_error']:.4g}."
        )
    classes = list(errors["confusion"])
    header = "| actual \\ predicted | " + " | ".join(classes) + " |\n" + "|---" * (len(classes) + 1)
    lines = [
        f"| {label} | " + " | ".join(str(n) for n in row.values()) + " |"
        for label, row in errors["confusion"].items()
    ]
    text = "Confusion counts on the held-out rows:\n\n" + header + "|\n" + "\n".join(lines)
    if "positive" in errors:
        text += (
            f"\n\nWith `{errors['positive']}` as the positive class: false-negative rate "
            f"{_figure(errors['false_negative_rate'])} (positives called negative), "
            f"false-positive rate {_figure(errors['false_positive_rate'])}."
        )
    return text


def _composition_text(composition: dict[str, Any] | None) -> str:
    if not composition:
        return "Composition: not recorded."
    if "classes" in composition:
        counts = ", ".join(f"{label} {n}" for label, n in composition["classes"].items())
        return f"Rows per class: {counts}."
    return (
        f"Target: mean {composition['mean']:.4g}, standard deviation {composition['std']:.4g}, "
        f"min {composition['min']:.4g}, median {composition['median']:.4g}, "
        f"max {composition['max']:.4g}."
    )


def _runtime_text(record: dict[str, Any] | None) -> str:
    """Which runtime the service answers with, and the parity check that decided it."""
    if not record:
        return "scikit-learn (exported before the ONNX export)"
    if record["runtime"] == "onnx":
        return (
            f"ONNX (`model.onnx`, onnxruntime): on {record['rows']} held-out rows every class "
            f"matched scikit-learn and the largest difference was {record['max_difference']:.2g} "
            f"(tolerance {record['tolerance']:g})"
        )
    return f"scikit-learn: no ONNX graph, because {record['reason']}"


def _promotion_text(record: dict[str, Any] | None) -> str:
    """The gate's decision for this version: both figures on the same rows, the interval."""
    if record is None:
        return "Not recorded: promoted before the gate recorded its decisions."
    text = f"{record['decided_at']}: {record['message']}."
    comparison = record.get("comparison")
    if comparison:
        text += (
            f" The held-out rows' SHA-256 (of their sorted row keys): "
            f"`{comparison['rows_sha256'][:16]}...`; both figures are on exactly these rows."
        )
    return text


def _replaces_text(record: dict[str, Any] | None) -> str:
    """The version this one replaced as champion, and why (the gate's own words)."""
    if record is None or "replaced" not in record:
        return "not recorded (promoted before the gate recorded it)."
    if record["replaced"] is None:
        return "nothing: the first champion of this model."
    return (
        f"v{record['replaced']}, the champion until this promotion; the gate: {record['message']}."
    )


def _attributions_text(record: dict[str, Any], shown: int = 10) -> str:
    """The top features by mean |SHAP| on the held-out rows (evaluate's explanation.json)."""
    if not record.get("importance"):
        return "(not recorded: this version was evaluated before explanations were)"
    rows = "\n".join(
        f"| {item['feature']} | {item['mean_abs_shap']:.4g} |"
        for item in record["importance"][:shown]
    )
    return (
        f"The {min(shown, len(record['importance']))} features with the largest mean absolute "
        f"SHAP value on {record['rows']} held-out rows ({record['method']}; each row's "
        f"`{record['output']}` for {record['explained']}), largest first:\n\n"
        f"| feature | mean abs SHAP |\n|---|---|\n{rows}\n\n"
        "An attribution says what this model relies on, not what causes the outcome. One "
        f"record's: `{__name__.partition('.')[0]} explain FILE.csv` (summary plot: "
        "`shap_summary.png` in the run's evaluation)."
    )


def _factors_text(contract: Contract) -> str:
    if not contract.slices:
        return (
            "None named: the contract has no `slices`, so no group of rows is judged apart. "
            "Name the sensitive attributes or business segments before relying on the model "
            "for decisions about people."
        )
    return "The groups the model is judged on apart (the contract's `slices`):\n\n" + "\n".join(
        f"- `{entry.column}`"
        + (f" in bands cut at {', '.join(f'{b:g}' for b in entry.bands)}" if entry.bands else "")
        + f": {entry.description or '(no description)'}"
        for entry in contract.slices
    )


def _caveats(contract: Contract, run: Any) -> str:
    rows = run.data.params.get("train_rows")
    generated = [
        f"Trained on {rows} rows; figures from a held-out split of the same source overstate "
        "performance on new populations.",
        "Drift in the inputs degrades the model silently; `monitor` watches the prediction log "
        "for it, and `retrain` brings in labelled production rows.",
        "An interval above says how much a figure depends on which rows were held out; two "
        "figures whose intervals overlap may not differ at all.",
    ]
    return "\n".join(f"- {item}" for item in [*contract.model_card.caveats, *generated])


def _trained_at(run: Any) -> str:
    started = datetime.fromtimestamp(run.info.start_time / 1000, UTC)
    return started.isoformat(timespec="seconds")


def _columns(contract: Contract) -> str:
    return "\n".join(
        f"- `{column.name}` ({column.type}{', nullable' if column.nullable else ''})"
        + (f": {column.description}" if column.description else "")
        for column in contract.columns
    )


def _uses(contract: Contract) -> dict[str, str]:
    card = contract.model_card
    out_of_scope = [
        *card.out_of_scope,
        "Records outside the data contract: the API refuses them (422) rather than guess.",
    ]
    return {
        "intended_use": card.intended_use or NOT_STATED.format(key="intended_use"),
        "out_of_scope": "\n".join(f"- {item}" for item in out_of_scope),
        "ethics": _bullets(card.ethical_considerations, "ethical_considerations"),
        "citation": card.citation or NOT_STATED.format(key="citation"),
    }


def model_card(
    settings: Settings,
    metadata: dict[str, Any],
    run: Any,
    behavioural: list[dict[str, Any]],
    contract: Contract,
) -> str:
    """The Markdown model card from the registry, the version's evaluation and its contract."""
    recorded = metadata.get("analysis", {})
    composition = recorded.get("composition", {})
    behaviour_rows = "\n".join(
        f"| {test['kind']} | {test['name']} | {'pass' if test['passed'] else 'FAIL'} "
        f"| {test['detail']} |"
        for test in behavioural
    )
    return CARD.format(
        **{key: metadata[key] for key in ("model_name", "version", "alias", "task", "run_id")},
        model_sha256=metadata["model_sha256"],
        runtime=_runtime_text(metadata.get("onnx")),
        replaces=_replaces_text(metadata.get("promotion")),
        estimator=run.data.tags.get("estimator"),
        git_commit=run.data.tags.get("git_commit"),
        trained_at=_trained_at(run),
        data_md5=run.data.tags.get("dvc_data_md5"),
        train_path=settings.data.train_path,
        train_rows=run.data.params.get("train_rows"),
        test_rows=run.data.params.get("test_rows"),
        test_fraction=settings.train.test_fraction,
        params="\n".join(f"- `{k}`: {v}" for k, v in sorted(run.data.params.items())),
        promotion=_promotion_text(metadata.get("promotion")),
        **_uses(contract),
        factors=_factors_text(contract),
        confidence=settings.evaluate.confidence,
        resamples=recorded.get("resamples", settings.evaluate.bootstrap_resamples),
        primary_metric=settings.evaluate.primary_metric,
        gain=settings.evaluate.min_gain_over_baseline,
        metric_rows=_metric_rows(settings, metadata),
        errors=_errors_text(recorded.get("errors", {})),
        held_out=_composition_text(composition.get("held_out")),
        training=_composition_text(composition.get("training")),
        data_name=contract.name,
        about=contract.description or "(no description: add one to contract.yaml)",
        target=contract.target.name,
        columns=_columns(contract),
        slices=card_section(metadata.get("slices", {}), settings),
        attributions=_attributions_text(metadata.get("explanation") or {}),
        behaviour_rows=behaviour_rows,
        caveats=_caveats(contract, run),
    )


PAGE = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; line-height: 1.5; color: #1b1b1b; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ border: 1px solid #c8c8c8; padding: 0.25rem 0.6rem; text-align: left; }}
th {{ background: #f2f2f2; }}
code {{ background: #f4f4f4; padding: 0 0.2rem; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""


def card_html(markdown: str) -> str:
    """The card as one self-contained HTML page (Markdown's tables included; raw HTML escaped)."""
    from markdown_it import MarkdownIt

    renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
    title = markdown.splitlines()[0].lstrip("# ").strip()
    return PAGE.format(title=html.escape(title), body=renderer.render(markdown))
