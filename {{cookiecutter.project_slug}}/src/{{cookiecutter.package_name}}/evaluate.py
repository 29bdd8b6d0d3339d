"""Stage `evaluate`: held-out metrics, plots and behavioural tests; the quality gate."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .behavioral import BehaviouralResult, run_behavioural_tests
from .contract import Contract
from .errors import QualityGateError
from .metrics import higher_is_better, meets_threshold, score_model
from .settings import Settings
from .tabular import read_table
from .tracking import configure, reported_failures
from .train import MODEL_FILE, SERVING_ARTIFACTS, TEST_FILE, TrainResult, model_inputs

REPORT_DIR = Path("reports/evaluate")
METRICS_FILE = REPORT_DIR / "metrics.json"
BEHAVIOURAL_FILE = REPORT_DIR / "behavioural.json"
# Where the run keeps its evaluation, and the version tags the promotion gate reads.
EVALUATION_ARTIFACTS = "evaluation"
METRIC_TAG_PREFIX = "test_"
GATE_TAG = "passed_quality_gate"


@dataclass(frozen=True)
class Evaluation:
    """Held-out metrics, the threshold verdicts and the behavioural test results."""

    model_version: str
    metrics: dict[str, float]
    threshold_failures: list[str]
    behavioural: list[BehaviouralResult]

    @property
    def passed(self) -> bool:
        """Whether the model meets every threshold and passes every behavioural test."""
        return not self.threshold_failures and all(test.passed for test in self.behavioural)


def load_serving_model(run_id: str) -> Any:
    """The model exactly as serving will load it: the run's joblib bundle."""
    import joblib
    import mlflow

    local = Path(
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=SERVING_ARTIFACTS)
    )
    return joblib.load(local / MODEL_FILE)


def threshold_failures(settings: Settings, metrics: dict[str, float]) -> list[str]:
    """One sentence per threshold missed, with both figures."""
    failures = []
    for metric, threshold in settings.evaluate.thresholds.items():
        if not meets_threshold(settings.task, metric, metrics[metric], threshold):
            side = "below" if higher_is_better(settings.task, metric) else "above"
            failures.append(f"{metric} {metrics[metric]:.4f} is {side} the threshold {threshold}")
    return failures


def _plots(
    model: Any, inputs: pd.DataFrame, target: pd.Series, settings: Settings, contract: Contract
) -> list[Path]:
    """Write PNG plots and the CSV data DVC plots from; return the PNGs."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from sklearn import metrics
    from sklearn.inspection import permutation_importance

    predictions = model.predict(inputs)
    pd.DataFrame({"actual": target.to_numpy(), "predicted": predictions}).to_csv(
        REPORT_DIR / "predictions.csv", index=False
    )
    figures: dict[str, Any] = {}
    if settings.task == "classification":
        positive = (contract.target.allowed or [""])[-1]
        scores = model.predict_proba(inputs)[:, list(model.classes_).index(positive)]
        figures["confusion_matrix"] = metrics.ConfusionMatrixDisplay.from_predictions(
            target, predictions
        ).figure_
        roc = metrics.RocCurveDisplay.from_predictions(target, scores, pos_label=positive)
        figures["roc_curve"] = roc.figure_
        pd.DataFrame({"fpr": roc.fpr, "tpr": roc.tpr}).to_csv(REPORT_DIR / "roc.csv", index=False)
        figures["precision_recall"] = metrics.PrecisionRecallDisplay.from_predictions(
            target, scores, pos_label=positive
        ).figure_
    else:
        figures["residuals"] = metrics.PredictionErrorDisplay.from_predictions(
            target, predictions, kind="residual_vs_predicted"
        ).figure_
    importance = permutation_importance(model, inputs, target, n_repeats=5, random_state=0)
    ranked = pd.Series(importance.importances_mean, index=inputs.columns).sort_values()
    ranked.rename("importance").to_csv(REPORT_DIR / "feature_importance.csv", index_label="feature")
    # A figure of its own: pandas would otherwise draw on the last display's axes.
    figure, axes = plt.subplots(figsize=(7, 5))
    ranked.tail(15).plot.barh(ax=axes, title="Permutation importance (held-out)")
    figures["feature_importance"] = figure
    paths = []
    for name, figure in figures.items():
        figure.tight_layout()
        paths.append(REPORT_DIR / f"{name}.png")
        figure.savefig(paths[-1], dpi=100)
        plt.close(figure)
    return paths


@reported_failures("evaluating")
def run_evaluate(settings: Settings, contract: Contract) -> Evaluation:
    """Score the latest trained model on its held-out split; raise if it fails the gate."""
    trained = TrainResult.load()
    configure(settings.registry)
    import mlflow

    model = load_serving_model(trained.run_id)
    test = read_table(TEST_FILE, contract)
    inputs, target = model_inputs(test, contract), test[contract.target.name]
    metrics = score_model(model, inputs, target, settings.task, list(contract.target.allowed or []))
    train_pool = read_table(settings.data.train_path, contract)
    train_pool[contract.feature_names] = model_inputs(train_pool, contract)
    test[contract.feature_names] = inputs
    behavioural = run_behavioural_tests(model, train_pool, test, contract, settings.task)
    evaluation = Evaluation(
        trained.model_version, metrics, threshold_failures(settings, metrics), behavioural
    )

    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    plots = _plots(model, inputs, target, settings, contract)
    METRICS_FILE.write_text(json.dumps({**metrics, "passed": evaluation.passed}, indent=2) + "\n")
    BEHAVIOURAL_FILE.write_text(json.dumps([asdict(test) for test in behavioural], indent=2) + "\n")
    with mlflow.start_run(run_id=trained.run_id):
        mlflow.log_metrics({METRIC_TAG_PREFIX + name: value for name, value in metrics.items()})
        for path in [*plots, BEHAVIOURAL_FILE, REPORT_DIR / "feature_importance.csv"]:
            mlflow.log_artifact(str(path), EVALUATION_ARTIFACTS)
    client = mlflow.MlflowClient()
    for key, value in {
        **{METRIC_TAG_PREFIX + k: f"{v:.6f}" for k, v in metrics.items()},
        GATE_TAG: str(evaluation.passed).lower(),
    }.items():
        client.set_model_version_tag(trained.model_name, trained.model_version, key, value)
    if not evaluation.passed:
        problems = evaluation.threshold_failures + [
            f"behavioural test '{test.name}' ({test.kind}) failed: {test.detail}"
            for test in behavioural
            if not test.passed
        ]
        raise QualityGateError(
            f"model v{trained.model_version} fails the quality gate and will not be promoted:\n  - "
            + "\n  - ".join(problems)
        )
    return evaluation
