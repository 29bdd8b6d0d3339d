"""Stage `evaluate`: held-out metrics, plots and behavioural tests; the quality gate."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .behavioral import BehaviouralResult, run_behavioural_tests
from .bundle import BACKGROUND_FILE, CONTRACT_FILE, EVALUATION_FILE, MODEL_FILE, model_inputs
from .card import analysis
from .comparison import outputs_frame, score_rows
from .contract import Contract, load_contract
from .errors import QualityGateError
from .explain import Explainer, overall, summary_figure
from .rows import evaluation_split
from .settings import Settings
from .slices import SliceResult, as_json, assess_slices, dvc_metrics, mlflow_metrics, slice_failures
from .tabular import FLOAT_PARSER, read_table
from .tracking import add_to_description, configure, optional_artifact, reported_failures
from .train import CV_OUTPUTS_FILE, SERVING_ARTIFACTS, TRAINING_ARTIFACTS, TrainResult

# Where the run keeps its evaluation, and the version tags the promotion gate reads.
EVALUATION_ARTIFACTS = "evaluation"
METRIC_TAG_PREFIX = "test_"
BASELINE_TAG_PREFIX = "baseline_"
GATE_TAG = "passed_quality_gate"
IMPORTANCE_FILE = "feature_importance.csv"
MAX_KEPT_OUTPUTS = 5000
# Held-out rows SHAP explains for the global picture (seeded sample): bounds the permutation
# explainer's time; tree and linear explainers take milliseconds for these.
MAX_EXPLAINED_ROWS = 500


@dataclass(frozen=True)
class Evaluation:
    """Held-out metrics, the threshold verdicts and the behavioural test results."""

    model_version: str
    metrics: dict[str, float]
    baseline: dict[str, float]
    threshold_failures: list[str]
    behavioural: list[BehaviouralResult]
    slices: list[SliceResult]
    # The model card's held-out analysis: intervals, errors, composition (card.analysis).
    analysis: dict[str, Any]

    @property
    def slice_failures(self) -> list[str]:
        """One sentence per slice gap above its bar."""
        return slice_failures(self.slices)

    @property
    def passed(self) -> bool:
        """Whether the model meets every bar (thresholds, slice gaps) and behavioural test."""
        return (
            not self.threshold_failures
            and not self.slice_failures
            and all(test.passed for test in self.behavioural)
        )


def load_serving_model(run_id: str) -> Any:
    """The model exactly as serving will load it: the run's joblib bundle."""
    return load_serving_bundle(run_id)[0]


def load_serving_bundle(run_id: str) -> tuple[Any, Contract]:
    """The run's model as serving loads it, and the contract it was trained for."""
    import joblib
    import mlflow

    local = Path(
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=SERVING_ARTIFACTS)
    )
    return joblib.load(local / MODEL_FILE), load_contract(local / CONTRACT_FILE)


def threshold_failures(
    settings: Settings, metrics: dict[str, float], baseline: dict[str, float]
) -> list[str]:
    """One sentence per bar missed (the baseline's, then each threshold), with the figures."""
    failures = []
    task = settings.task
    metric, wanted = settings.evaluate.primary_metric, settings.evaluate.min_gain_over_baseline
    gain = task.gain(metric, metrics[metric], baseline[metric])
    if not math.isfinite(gain):
        failures.append(
            f"{metric} cannot be computed on the held-out rows (model {metrics[metric]}, "
            f"baseline {baseline[metric]}): a class is probably missing from them; fix: more "
            "rows of each class, or another evaluate.primary_metric"
        )
    elif gain < wanted:
        failures.append(
            f"{metric} {metrics[metric]:.4f} closes {gain:.0%} of the gap between a baseline that "
            f"ignores the inputs ({baseline[metric]:.4f}) and a perfect score; "
            f"evaluate.min_gain_over_baseline asks for {wanted:.0%}"
        )
    for metric, threshold in settings.evaluate.thresholds.items():
        if not task.meets_threshold(metric, metrics[metric], threshold):
            side = "below" if task.higher_is_better(metric) else "above"
            failures.append(f"{metric} {metrics[metric]:.4f} is {side} the threshold {threshold}")
    return failures


def _plots(
    model: Any, inputs: pd.DataFrame, target: pd.Series, settings: Settings, contract: Contract
) -> list[Path]:
    """Write PNG plots and the CSV tables DVC plots from; return the files to keep with the run.

    Every figure is titled with the model version and the row count: a plot copied into a
    review or a ticket still says what it shows.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from sklearn.inspection import permutation_importance

    report_dir = settings.evaluate.report_dir
    predictions = model.predict(inputs)
    pd.DataFrame({"actual": target.to_numpy(), "predicted": predictions}).to_csv(
        report_dir / "predictions.csv", index=False
    )
    classes = list(contract.target.allowed or [])
    figures, tables = settings.task.plots(model, inputs, target, classes)
    paths = []
    for stem, table in tables.items():
        table.to_csv(report_dir / f"{stem}.csv", index=False)
        paths.append(report_dir / f"{stem}.csv")
    importance = permutation_importance(model, inputs, target, n_repeats=5, random_state=0)
    ranked = pd.Series(importance.importances_mean, index=inputs.columns).sort_values()
    ranked.rename("importance").to_csv(report_dir / IMPORTANCE_FILE, index_label="feature")
    # A figure of its own: pandas would otherwise draw on the last display's axes.
    figure, axes = plt.subplots(figsize=(7, 5))
    ranked.tail(15).plot.barh(ax=axes, title="Permutation importance (held-out)")
    figures["feature_importance"] = figure
    trained = TrainResult.load(settings.train.run_file)
    figures["shap_summary"] = _explanation(model, inputs, settings, contract, trained.run_id)
    caption = f"{trained.model_name} v{trained.model_version}, {len(target)} held-out rows"
    for name, figure in figures.items():
        figure.suptitle(caption, fontsize="small")
        figure.tight_layout()
        paths.append(report_dir / f"{name}.png")
        figure.savefig(paths[-1], dpi=100)
        plt.close(figure)
    return paths


def _explanation(
    model: Any, inputs: pd.DataFrame, settings: Settings, contract: Contract, run_id: str
) -> Any:
    """Write SHAP's global picture of the held-out rows (explanation.json); its summary plot."""
    import numpy as np

    found = optional_artifact(run_id, f"{SERVING_ARTIFACTS}/{BACKGROUND_FILE}")
    background = None if found is None else np.load(found, allow_pickle=False)
    explainer = Explainer(model, list(contract.target.allowed or []), background)
    if len(inputs) > MAX_EXPLAINED_ROWS:
        inputs = inputs.sample(MAX_EXPLAINED_ROWS, random_state=settings.train.seed)
    attributions = explainer.explain(inputs)
    text = json.dumps(overall(attributions), indent=2)
    settings.evaluate.explanation_file.write_text(text + "\n")
    return summary_figure(attributions, inputs)


def _expected_outputs(
    model: Any, inputs: pd.DataFrame, target: pd.Series, settings: Settings, contract: Contract
) -> Path:
    """What the model is expected to answer: held-out and out-of-fold answers, together.

    At most MAX_KEPT_OUTPUTS of them, seeded. The bundle keeps them, so monitoring weighs a
    window's figure against this one, noise and all: a few dozen held-out rows alone can
    flatter a model by chance.
    """
    classes = list(contract.target.allowed or [])
    held_out = outputs_frame(target, score_rows(settings.task, model, inputs, classes), classes)
    parts = [held_out.assign(source="held_out")]
    cv_outputs = _cv_outputs(TrainResult.load(settings.train.run_file).run_id)
    if cv_outputs is not None:
        parts.append(cv_outputs.assign(source="cross_validation"))
    outputs = pd.concat(parts, ignore_index=True)
    if len(outputs) > MAX_KEPT_OUTPUTS:
        outputs = outputs.sample(MAX_KEPT_OUTPUTS, random_state=settings.train.seed)
    path = settings.evaluate.report_dir / EVALUATION_FILE
    outputs.to_csv(path, index=False)
    return path


def _cv_outputs(run_id: str) -> pd.DataFrame | None:
    path = optional_artifact(run_id, f"{TRAINING_ARTIFACTS}/{CV_OUTPUTS_FILE}")
    return None if path is None else pd.read_csv(path, float_precision=FLOAT_PARSER)


def assess(
    settings: Settings, contract: Contract, model: Any, version: str, test: pd.DataFrame
) -> Evaluation:
    """Held-out metrics, a baseline's on the same rows, the bars and the behavioural tests."""
    task, classes = settings.task, list(contract.target.allowed or [])
    inputs, target = model_inputs(test, contract), test[contract.target.name]
    metrics = task.score(model, inputs, target, classes)
    pool = read_table(settings.data.train_path, contract)
    # The training part exactly as `train` split it: the baseline never sees held-out rows.
    fitted_on, _ = evaluation_split(pool, settings, contract)
    fitted_inputs = model_inputs(fitted_on, contract)
    baseline_model = task.baseline().fit(fitted_inputs, fitted_on[target.name])
    baseline = task.score(baseline_model, inputs, target, classes)
    # Typical cases, the directional feature and spreads come from the training part only.
    fitted_on = fitted_on.assign(**fitted_inputs)
    held_out = test.assign(**inputs)
    behavioural = run_behavioural_tests(
        model, fitted_on, held_out, contract, task, settings.evaluate.directional
    )
    failures = threshold_failures(settings, metrics, baseline)
    answers = task.predict_arrays(model, inputs).values
    slices = assess_slices(settings, contract, test, answers)
    scored = score_rows(task, model, inputs, classes)
    facts = analysis(settings, contract, metrics, (target, scored), fitted_on[target.name])
    return Evaluation(version, metrics, baseline, failures, behavioural, slices, facts)


def _write_reports(settings: Settings, evaluation: Evaluation) -> dict[str, float]:
    """metrics.json (DVC metrics), slices.json, analysis.json and behavioural.json.

    Returns the baseline's figures.
    """
    baseline = {BASELINE_TAG_PREFIX + name: value for name, value in evaluation.baseline.items()}
    summary = {
        **evaluation.metrics,
        **baseline,
        "passed": evaluation.passed,
        "slices": dvc_metrics(evaluation.slices),
    }
    settings.evaluate.metrics_file.write_text(json.dumps(summary, indent=2) + "\n")
    slices = json.dumps(as_json(evaluation.slices), indent=2)
    settings.evaluate.slices_file.write_text(slices + "\n")
    analysis_text = json.dumps(evaluation.analysis, indent=2)
    settings.evaluate.analysis_file.write_text(analysis_text + "\n")
    results = [asdict(result) for result in evaluation.behavioural]
    settings.evaluate.behavioural_file.write_text(json.dumps(results, indent=2) + "\n")
    return baseline


@reported_failures("evaluating")
def run_evaluate(settings: Settings, contract: Contract) -> Evaluation:
    """Score the latest trained model on its held-out split; raise if it fails the gate."""
    trained = TrainResult.load(settings.train.run_file)
    configure(settings.registry)
    import mlflow

    model = load_serving_model(trained.run_id)
    test = read_table(settings.data.test_path, contract)
    evaluation = assess(settings, contract, model, trained.model_version, test)
    metrics, behavioural = evaluation.metrics, evaluation.behavioural
    inputs, target = model_inputs(test, contract), test[contract.target.name]
    report_dir = settings.evaluate.report_dir
    report_dir.mkdir(parents=True, exist_ok=True)
    plots = _plots(model, inputs, target, settings, contract)
    plots.append(_expected_outputs(model, inputs, target, settings, contract))
    baseline = _write_reports(settings, evaluation)
    with mlflow.start_run(run_id=trained.run_id):
        mlflow.log_metrics({METRIC_TAG_PREFIX + name: value for name, value in metrics.items()})
        mlflow.log_metrics(mlflow_metrics(evaluation.slices))
        for path in [
            *plots,
            settings.evaluate.behavioural_file,
            settings.evaluate.slices_file,
            settings.evaluate.analysis_file,
            settings.evaluate.explanation_file,
            report_dir / IMPORTANCE_FILE,
        ]:
            mlflow.log_artifact(str(path), EVALUATION_ARTIFACTS)
    verdict = "passes" if evaluation.passed else "fails"
    figures = ", ".join(f"{name} {value:.4f}" for name, value in metrics.items())
    add_to_description(
        trained.run_id,
        f"`evaluate`: {verdict} the quality gate on {len(test)} held-out rows ({figures}).",
    )
    client = mlflow.MlflowClient()
    for key, value in {
        **{METRIC_TAG_PREFIX + k: f"{v:.6f}" for k, v in metrics.items()},
        **{k: f"{v:.6f}" for k, v in baseline.items()},
        GATE_TAG: str(evaluation.passed).lower(),
    }.items():
        client.set_model_version_tag(trained.model_name, trained.model_version, key, value)
    if not evaluation.passed:
        problems = (
            evaluation.threshold_failures
            + evaluation.slice_failures
            + [
                f"behavioural test '{test.name}' ({test.kind}) failed: {test.detail}"
                for test in behavioural
                if not test.passed
            ]
        )
        raise QualityGateError(
            f"model v{trained.model_version} fails the quality gate and will not be promoted:\n  - "
            + "\n  - ".join(problems)
        )
    return evaluation
