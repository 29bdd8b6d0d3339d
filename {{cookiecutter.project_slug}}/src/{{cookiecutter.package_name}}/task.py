"""The ML task: everything that differs between classification and regression, in one place.

One object per task answers every task-specific question the stages ask: which metrics exist and
which way each improves, which estimators fit, how folds are drawn, how a model is scored and
answers, which plots evaluation draws, what the behavioural tests check and how Evidently sees
the prediction. Nothing outside this module compares task names; adding a task is one class
here (plus a sample dataset and its contract).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

import numpy as np

from .metrics import (
    BINARY,
    Weights,
    classification_metrics,
    regression_metrics,
    resampled_classification_metric,
    resampled_regression_metric,
)
from .monitoring.records import PREDICTION, PROBABILITIES

if TYPE_CHECKING:  # the service imports this module: pandas only where a function needs it
    import pandas as pd

    from .contract import Contract

Array = np.ndarray[Any, Any]
# What a model predicts from: a frame for scikit-learn, arrays by input name for ONNX.
ModelInputs: TypeAlias = "pd.DataFrame | Mapping[str, Array]"


@dataclass(frozen=True)
class Prediction:
    """One record's answer: a class with its probabilities, or a number."""

    value: str | float
    probabilities: dict[str, float] | None = None


@dataclass(frozen=True)
class Predictions:
    """A batch's answers as arrays: what batch scoring writes without a Python object per row."""

    values: Array
    # One column per class of `classes`, or None for a task without class probabilities.
    probabilities: Array | None = None
    classes: tuple[str, ...] = ()

    def take(self, rows: Array) -> Predictions:
        """The answers of `rows` (positions), in that order."""
        probabilities = None if self.probabilities is None else self.probabilities[rows]
        return Predictions(self.values[rows], probabilities, self.classes)

    def items(self) -> list[Prediction]:
        """One `Prediction` per row, in order (what the service answers with)."""
        if self.probabilities is None:
            return [Prediction(float(value)) for value in self.values.tolist()]
        classes = self.classes
        return [
            Prediction(label, dict(zip(classes, row, strict=True)))
            for label, row in zip(self.values.tolist(), self.probabilities.tolist(), strict=True)
        ]


def load_class(name: str) -> Any:
    """The class a "module:Class" name points to, imported when asked for (keeps imports lazy)."""
    module, _, class_name = name.partition(":")
    return getattr(importlib.import_module(module), class_name)


class Task(ABC):
    """What a task decides; each subclass is one task."""

    name: ClassVar[str]
    # Metric name -> whether a larger value is better.
    metrics: ClassVar[dict[str, bool]]
    # params.yaml estimator name -> "module:Class".
    estimators: ClassVar[dict[str, str]]
    # How Evidently treats the prediction column in drift reports.
    prediction_is_categorical: ClassVar[bool]
    # Whether random splits keep the target's class shares.
    stratified: ClassVar[bool]
    # "module:Class" of the cross-validation splitter, and of the baseline with its options.
    splitter: ClassVar[str]
    baseline_estimator: ClassVar[tuple[str, dict[str, str]]]

    def higher_is_better(self, metric: str) -> bool:
        """Whether a larger value of `metric` means a better model."""
        return self.metrics[metric]

    def meets_threshold(self, metric: str, value: float, threshold: float) -> bool:
        """Whether `value` is on the good side of `threshold` (inclusive)."""
        return value >= threshold if self.higher_is_better(metric) else value <= threshold

    def gain(self, metric: str, value: float, baseline: float) -> float:
        """The share of the distance from `baseline` to a perfect score that `value` closes.

        NaN when either figure is (a metric that cannot be computed on these rows).
        """
        perfect = 0.0 if not self.higher_is_better(metric) else 1.0
        better = value - baseline if self.higher_is_better(metric) else baseline - value
        distance = abs(perfect - baseline)
        return better / distance if distance else (1.0 if better >= 0 else -1.0)

    def baseline(self) -> Any:
        """An estimator that ignores the inputs: what any model must beat."""
        name, options = self.baseline_estimator
        return load_class(name)(**options)

    def relative_drop(self, metric: str, current: float, reference: float) -> float:
        """How much worse `current` is than `reference`, as a share (negative: better)."""
        worse = reference - current if self.higher_is_better(metric) else current - reference
        return worse / abs(reference) if reference else worse

    def unjudgeable(self, labels: pd.Series) -> str | None:
        """Why these true values cannot score a model, or None when they can."""
        del labels
        return None

    def stratify(self, target: str) -> str | None:
        """The column a random split keeps the proportions of, if any."""
        return target if self.stratified else None

    def folds(self, count: int, seed: int) -> Any:
        """A scikit-learn cross-validation splitter."""
        return load_class(self.splitter)(count, shuffle=True, random_state=seed)

    def __str__(self) -> str:
        return self.name

    def score(
        self, model: Any, inputs: pd.DataFrame, target: pd.Series, classes: Sequence[str]
    ) -> dict[str, float]:
        """Every metric of the task for a fitted model on `inputs`."""
        scores = self.scores(model, inputs, classes)
        return self.metrics_of(target, model.predict(inputs), scores, classes)

    @abstractmethod
    def scores(self, model: Any, inputs: pd.DataFrame, classes: Sequence[str]) -> Array | None:
        """Class probabilities, one column per class in the order of `classes`, or None."""

    @abstractmethod
    def metrics_of(
        self,
        target: pd.Series,
        predicted: Array,
        scores: Array | None,
        classes: Sequence[str],
        only: str | None = None,
    ) -> dict[str, float]:
        """Every metric of the task (or `only` one), from true values, predictions, scores."""

    @abstractmethod
    def resampled(
        self,
        metric: str,
        target: pd.Series,
        predicted: Array,
        scores: Array | None,
        classes: Sequence[str],
        weights: Weights,
    ) -> Array:
        """`metric` on each bootstrap resample (a row of draw counts); NaN where undefined."""

    @abstractmethod
    def predict_arrays(self, pipeline: Any, inputs: ModelInputs) -> Predictions:
        """The model's answers for `inputs`, in order, as arrays."""

    def predict(self, pipeline: Any, inputs: ModelInputs) -> list[Prediction]:
        """The model's answers for `inputs`, in order."""
        return self.predict_arrays(pipeline, inputs).items()

    @abstractmethod
    def answer(self, prediction: Prediction) -> dict[str, Any]:
        """One prediction as the API returns it and the prediction log stores it."""

    @abstractmethod
    def labels(self, values: pd.Series) -> pd.Series:
        """True or predicted target values in the form metrics compare them."""

    @abstractmethod
    def row_errors(self, truth: pd.Series, predicted: pd.Series) -> pd.Series:
        """Each row's error: 1.0 for a wrong class (else 0.0), or the absolute difference."""

    @abstractmethod
    def usual_error(self, held_out_errors: pd.Series) -> float:
        """The error beyond which a label disagrees with the model, from its held-out errors."""

    @abstractmethod
    def plots(
        self, model: Any, inputs: pd.DataFrame, target: pd.Series, classes: Sequence[str]
    ) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
        """Evaluation figures by name, and the tables DVC plots draw from, by file stem."""

    @abstractmethod
    def signal(self, target: pd.Series, classes: Sequence[str]) -> pd.Series:
        """The number a directional test follows: the positive class, or the target itself."""

    @abstractmethod
    def output(self, model: Any, inputs: pd.DataFrame, classes: Sequence[str]) -> Array:
        """The model's `signal` for `inputs`: a probability or a predicted value."""

    @abstractmethod
    def typical_cases(
        self, model: Any, train: pd.DataFrame, contract: Contract
    ) -> list[tuple[str, bool, str]]:
        """Minimum-functionality checks: (name, passed, detail) for typical training cases."""

    @abstractmethod
    def unchanged(self, before: Array, after: Array, spread: float) -> float:
        """The share of predictions that noise left unchanged (`spread`: the target's std)."""

    @abstractmethod
    def evidently_quality(
        self, target: str, prediction: str, classes: Sequence[str], scored: bool
    ) -> tuple[Any, Any, str | None]:
        """Evidently's data definition and preset for model quality, and the score column."""


def _typical_frame(members: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """One row: the median of every numeric feature, a member's categories otherwise."""
    names = contract.feature_names
    typical = members[names].median(numeric_only=True).to_frame().T
    case = members[names].head(1).copy()
    case[typical.columns] = typical.to_numpy()
    return case


class Classification(Task):
    """A category target; probabilities for every class; a binary task's last class is positive."""

    name = "classification"
    metrics: ClassVar[dict[str, bool]] = {
        "accuracy": True,
        "f1": True,
        "precision": True,
        "recall": True,
        "roc_auc": True,
    }
    estimators: ClassVar[dict[str, str]] = {
        "logistic_regression": "sklearn.linear_model:LogisticRegression",
        "random_forest": "sklearn.ensemble:RandomForestClassifier",
        "gradient_boosting": "sklearn.ensemble:HistGradientBoostingClassifier",
    }
    prediction_is_categorical = True
    stratified = True
    splitter = "sklearn.model_selection:StratifiedKFold"
    # The majority class, with the training prior as every record's probabilities.
    baseline_estimator = ("sklearn.dummy:DummyClassifier", {"strategy": "prior"})

    def unjudgeable(self, labels: pd.Series) -> str | None:
        """One class only: no quality figure (ROC AUC, F1...) is defined or meaningful."""
        if labels.astype(str).nunique() == 1:
            return f"all {len(labels)} labels are one class ({labels.iloc[0]!r})"
        return None

    def scores(self, model: Any, inputs: pd.DataFrame, classes: Sequence[str]) -> Array | None:
        # predict_proba's columns follow model.classes_ (sorted); the contract's order may not.
        order = [str(label) for label in model.classes_]
        return np.asarray(model.predict_proba(inputs))[:, [order.index(c) for c in classes]]

    def metrics_of(
        self,
        target: pd.Series,
        predicted: Array,
        scores: Array | None,
        classes: Sequence[str],
        only: str | None = None,
    ) -> dict[str, float]:
        if scores is None:
            raise ValueError("classification metrics need class probabilities")
        return classification_metrics(target, predicted, scores, classes, only)

    def resampled(
        self,
        metric: str,
        target: pd.Series,
        predicted: Array,
        scores: Array | None,
        classes: Sequence[str],
        weights: Weights,
    ) -> Array:
        if scores is None:
            raise ValueError("classification metrics need class probabilities")
        return resampled_classification_metric(metric, target, predicted, scores, classes, weights)

    def predict_arrays(self, pipeline: Any, inputs: ModelInputs) -> Predictions:
        probabilities = np.asarray(pipeline.predict_proba(inputs), dtype=float)
        classes = tuple(str(label) for label in pipeline.classes_)
        # The most probable class (the first on a tie), as predict_proba's argmax always gave.
        values = np.asarray(classes, dtype=object)[probabilities.argmax(axis=1)]
        return Predictions(values, probabilities, classes)

    def answer(self, prediction: Prediction) -> dict[str, Any]:
        return {PREDICTION: prediction.value, PROBABILITIES: prediction.probabilities}

    def labels(self, values: pd.Series) -> pd.Series:
        return values.astype(str)

    def row_errors(self, truth: pd.Series, predicted: pd.Series) -> pd.Series:
        return (self.labels(truth) != self.labels(predicted)).astype(float)

    def usual_error(self, held_out_errors: pd.Series) -> float:
        del held_out_errors
        return 0.0  # any other class disagrees

    def plots(
        self, model: Any, inputs: pd.DataFrame, target: pd.Series, classes: Sequence[str]
    ) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
        import matplotlib.pyplot as plt
        import pandas as pd
        from sklearn import metrics

        scores = model.predict_proba(inputs)
        order = [str(label) for label in model.classes_]
        confusion = metrics.ConfusionMatrixDisplay.from_predictions(
            target, model.predict(inputs), labels=list(classes)
        )
        roc_figure, roc_axes = plt.subplots(figsize=(6, 5))
        pr_figure, pr_axes = plt.subplots(figsize=(6, 5))
        curves = []
        # One curve per class against the rest; a binary target's positive class alone.
        for label in classes[-1:] if len(classes) == BINARY else classes:
            truth, column = target == label, scores[:, order.index(label)]
            roc = metrics.RocCurveDisplay.from_predictions(truth, column, name=label, ax=roc_axes)
            pr = metrics.PrecisionRecallDisplay.from_predictions(
                truth, column, name=label, ax=pr_axes
            )
            # Four decimals: scikit-learn's two would print an AUC of 0.998 as 1.00.
            roc.line_.set_label(f"{label} (AUC {roc.roc_auc:.4f})")
            pr.line_.set_label(f"{label} (AP {pr.average_precision:.4f})")
            curves.append(pd.DataFrame({"fpr": roc.fpr, "tpr": roc.tpr, "class": label}))
        roc_axes.legend(loc="lower right")
        pr_axes.legend(loc="lower left")
        rows = f"{len(target)} held-out rows"
        confusion.ax_.set_title(f"Confusion matrix, {rows}")
        roc_axes.set_title(f"ROC, one class vs the rest, {rows}")
        pr_axes.set_title(f"Precision-recall, one class vs the rest, {rows}")
        figures = {
            "confusion_matrix": confusion.figure_,
            "roc_curve": roc_figure,
            "precision_recall": pr_figure,
        }
        report = metrics.classification_report(
            target, model.predict(inputs), labels=list(classes), output_dict=True, zero_division=0
        )
        per_class = pd.DataFrame(
            [{"class": label, **report[label]} for label in classes]
        )  # precision, recall, f1-score and support of each class, beside the macro figures
        return figures, {"roc": pd.concat(curves, ignore_index=True), "per_class": per_class}

    def signal(self, target: pd.Series, classes: Sequence[str]) -> pd.Series:
        return (target == classes[-1]).astype(float)

    def output(self, model: Any, inputs: pd.DataFrame, classes: Sequence[str]) -> Array:
        column = list(model.classes_).index(classes[-1])
        return np.asarray(model.predict_proba(inputs)[:, column])

    def typical_cases(
        self, model: Any, train: pd.DataFrame, contract: Contract
    ) -> list[tuple[str, bool, str]]:
        checks = []
        for label in contract.target.allowed or []:
            members = train[train[contract.target.name] == label]
            predicted = str(model.predict(_typical_frame(members, contract))[0])
            checks.append((f"typical {label} case", predicted == label, f"predicted {predicted}"))
        return checks

    def unchanged(self, before: Array, after: Array, spread: float) -> float:
        return float(np.mean(before == after))

    def evidently_quality(
        self, target: str, prediction: str, classes: Sequence[str], scored: bool
    ) -> tuple[Any, Any, str | None]:
        from evidently import BinaryClassification, DataDefinition, MulticlassClassification
        from evidently.presets import ClassificationPreset

        binary = len(classes) == BINARY
        score = f"score_{classes[-1]}" if binary and scored else None
        kind: Any = (
            BinaryClassification(
                target=target,
                prediction_labels=prediction,
                prediction_probas=score,
                pos_label=classes[-1],
            )
            if binary
            else MulticlassClassification(target=target, prediction_labels=prediction)
        )
        definition = DataDefinition(
            categorical_columns=[target, prediction],
            numerical_columns=[score] if score else [],
            classification=[kind],
        )
        return definition, ClassificationPreset(), score


class Regression(Task):
    """A numeric target; one predicted value per record."""

    name = "regression"
    metrics: ClassVar[dict[str, bool]] = {"r2": True, "rmse": False, "mae": False}
    estimators: ClassVar[dict[str, str]] = {
        "ridge": "sklearn.linear_model:Ridge",
        "random_forest": "sklearn.ensemble:RandomForestRegressor",
        "gradient_boosting": "sklearn.ensemble:HistGradientBoostingRegressor",
    }
    prediction_is_categorical = False
    stratified = False
    splitter = "sklearn.model_selection:KFold"
    baseline_estimator = ("sklearn.dummy:DummyRegressor", {"strategy": "mean"})
    # The usual range a typical case's prediction must fall in (target quantiles).
    usual_range = (0.05, 0.95)

    def scores(self, model: Any, inputs: pd.DataFrame, classes: Sequence[str]) -> Array | None:
        return None

    def metrics_of(
        self,
        target: pd.Series,
        predicted: Array,
        scores: Array | None,
        classes: Sequence[str],
        only: str | None = None,
    ) -> dict[str, float]:
        return regression_metrics(target, np.asarray(predicted, dtype=float), only)

    def resampled(
        self,
        metric: str,
        target: pd.Series,
        predicted: Array,
        scores: Array | None,
        classes: Sequence[str],
        weights: Weights,
    ) -> Array:
        return resampled_regression_metric(metric, target, predicted, weights)

    def predict_arrays(self, pipeline: Any, inputs: ModelInputs) -> Predictions:
        return Predictions(np.asarray(pipeline.predict(inputs), dtype=float))

    def answer(self, prediction: Prediction) -> dict[str, Any]:
        return {PREDICTION: prediction.value}

    def labels(self, values: pd.Series) -> pd.Series:
        import pandas as pd

        return pd.to_numeric(values).astype(float)

    def row_errors(self, truth: pd.Series, predicted: pd.Series) -> pd.Series:
        return (self.labels(truth) - self.labels(predicted)).abs()

    def usual_error(self, held_out_errors: pd.Series) -> float:
        # What the model misses by on 19 of 20 held-out rows.
        return float(held_out_errors.quantile(0.95))

    def plots(
        self, model: Any, inputs: pd.DataFrame, target: pd.Series, classes: Sequence[str]
    ) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
        from sklearn import metrics

        residuals = metrics.PredictionErrorDisplay.from_predictions(
            target, model.predict(inputs), kind="residual_vs_predicted"
        )
        return {"residuals": residuals.figure_}, {}

    def signal(self, target: pd.Series, classes: Sequence[str]) -> pd.Series:
        import pandas as pd

        return pd.to_numeric(target).astype(float)

    def output(self, model: Any, inputs: pd.DataFrame, classes: Sequence[str]) -> Array:
        return np.asarray(model.predict(inputs), dtype=float)

    def typical_cases(
        self, model: Any, train: pd.DataFrame, contract: Contract
    ) -> list[tuple[str, bool, str]]:
        target = train[contract.target.name]
        low, high = (float(target.quantile(share)) for share in self.usual_range)
        value = float(model.predict(_typical_frame(train, contract))[0])
        return [
            (
                "typical case in the usual range",
                low <= value <= high,
                f"{value:.2f} in [{low:.2f}, {high:.2f}]",
            )
        ]

    def unchanged(self, before: Array, after: Array, spread: float) -> float:
        # A change under 5% of the target's spread is no change in what the model says.
        return float(np.mean(np.abs(before - after) <= spread * 0.05))

    def evidently_quality(
        self, target: str, prediction: str, classes: Sequence[str], scored: bool
    ) -> tuple[Any, Any, str | None]:
        from evidently import DataDefinition
        from evidently import Regression as RegressionTask
        from evidently.presets import RegressionPreset

        definition = DataDefinition(
            numerical_columns=[target, prediction],
            regression=[RegressionTask(target=target, prediction=prediction)],
        )
        return definition, RegressionPreset(), None


TASKS: dict[str, Task] = {task.name: task for task in (Classification(), Regression())}


def task_named(name: str) -> Task:
    """The task called `name` (params.yaml's `task`)."""
    return TASKS[name]
