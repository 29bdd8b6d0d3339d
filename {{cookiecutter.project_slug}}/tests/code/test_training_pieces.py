"""Training building blocks on synthetic data: estimators, the contract-driven pipeline, metrics."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.behavioral import (
    run_behavioural_tests,
)
from {{ cookiecutter.package_name }}.bundle import (
    model_inputs,
)
from {{ cookiecutter.package_name }}.comparison import (
    PairedComparison,
    Scored,
    drop_interval,
    paired_bootstrap,
)
from {{ cookiecutter.package_name }}.contract import (
    Column,
    Contract,
)
from {{ cookiecutter.package_name }}.errors import (
    ProjectError,
)
from {{ cookiecutter.package_name }}.settings import (
    DirectionalSettings,
    Settings,
)
from {{ cookiecutter.package_name }}.task import (
    TASKS,
    Task,
)
from {{ cookiecutter.package_name }}.train import (
    build_pipeline,
    make_estimator,
)

CLASSIFICATION, REGRESSION = TASKS["classification"], TASKS["regression"]
CONTRACT = Contract(
    name="toy",
    target=Column(name="bought", type="category", allowed=["no", "yes"]),
    features=[
        Column(name="price", type="float", nullable=True),
        Column(name="colour", type="category", allowed=["red", "blue", "green"], nullable=True),
    ],
)


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = 300
    colour = rng.choice(["red", "blue", "green"], rows)
    price = rng.uniform(1, 10, rows)
    bought = np.where((colour == "red") | (price < 3), "yes", "no")
    frame = pd.DataFrame({"price": price, "colour": colour, "bought": bought})
    frame.loc[::17, "price"] = np.nan
    frame.loc[::23, "colour"] = None
    return frame


def test_pipeline_learns_from_a_categorical_feature(frame: pd.DataFrame) -> None:
    estimator = make_estimator(CLASSIFICATION, "logistic_regression", {"C": 10.0}, seed=0)
    model = build_pipeline(CONTRACT, estimator).fit(model_inputs(frame, CONTRACT), frame["bought"])
    unseen = pd.DataFrame({"price": [8.0, 8.0, np.nan], "colour": ["red", "blue", "purple"]})
    predicted = model.predict(model_inputs(unseen, CONTRACT))
    # Red sells, blue at a high price does not; an unknown colour or a missing price still scores.
    assert list(predicted[:2]) == ["yes", "no"]
    assert predicted[2] in {"yes", "no"}


def test_same_seed_same_model(frame: pd.DataFrame) -> None:
    inputs = model_inputs(frame, CONTRACT)
    fitted = [
        build_pipeline(
            CONTRACT, make_estimator(CLASSIFICATION, "random_forest", {"n_estimators": 10}, 7)
        )
        .fit(inputs, frame["bought"])
        .predict_proba(inputs)
        for _ in range(2)
    ]
    np.testing.assert_array_equal(fitted[0], fitted[1])


def test_unknown_estimator_is_named() -> None:
    with pytest.raises(ProjectError, match="'svm' is not a regression estimator; use one of ridge"):
        make_estimator(REGRESSION, "svm", {}, seed=0)


def test_unknown_hyperparameter_is_named() -> None:
    with pytest.raises(ProjectError, match="max_dept not accepted by RandomForestClassifier"):
        make_estimator(CLASSIFICATION, "random_forest", {"max_dept": 3}, seed=0)


def test_metric_directions_and_the_baseline_gain() -> None:
    assert REGRESSION.meets_threshold("rmse", 60.0, 60.0)
    assert not CLASSIFICATION.meets_threshold("f1", 0.89, 0.9)
    assert REGRESSION.relative_drop("rmse", 55.0, 50.0) == pytest.approx(0.1)
    assert CLASSIFICATION.relative_drop("roc_auc", 0.99, 0.9) < 0  # better is a negative drop
    # The baseline bar: the share of the gap between the baseline and a perfect score closed.
    assert CLASSIFICATION.gain("roc_auc", 0.75, 0.5) == pytest.approx(0.5)
    assert REGRESSION.gain("rmse", 45.0, 50.0) == pytest.approx(0.1)
    assert REGRESSION.gain("rmse", 55.0, 50.0) < 0


def test_a_model_no_better_than_the_baseline_fails_the_gate(settings: Settings) -> None:
    from {{ cookiecutter.package_name }}.evaluate import (
        threshold_failures,
    )

    metric = settings.evaluate.primary_metric
    lenient = settings.model_copy(
        update={"evaluate": settings.evaluate.model_copy(update={"thresholds": {}})}
    )
    same = {metric: 0.7}
    [failure] = threshold_failures(lenient, same, same)
    assert "closes 0%" in failure
    assert "evaluate.min_gain_over_baseline" in failure


def test_metrics_must_suit_the_task(settings: Settings) -> None:
    # A metric of another task.
    wrong = next(
        m for task in TASKS.values() for m in task.metrics if m not in settings.task.metrics
    )
    data = settings.model_dump()
    data["evaluate"]["primary_metric"] = wrong
    with pytest.raises(ValueError, match=f"'{wrong}' is not a {settings.task} metric"):
        Settings.model_validate(data)


def test_mlflow_failure_becomes_one_line() -> None:
    from mlflow.exceptions import MlflowException

    from {{ cookiecutter.package_name }}.tracking import (
        reported_failures,
    )

    @reported_failures("promoting")
    def fails() -> None:
        raise MlflowException("API request to http://mlflow:5000 failed\nwith a long trace")

    with pytest.raises(ProjectError) as raised:
        fails()
    assert str(raised.value) == (
        "MLflow failed while promoting: API request to http://mlflow:5000 failed; "
        "fix: check the tracking store and rerun"
    )


def test_mlflow_is_quiet_unless_asked_and_the_ui_link_opens_the_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from {{ cookiecutter.package_name }}.tracking import (
        quiet_mlflow,
        runs_page,
    )

    monkeypatch.setenv("MLFLOW_LOGGING_LEVEL", "INFO")  # recorded, so the test's change is undone
    monkeypatch.delenv("MLFLOW_LOGGING_LEVEL")
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "true")  # the user's own choice
    quiet_mlflow()
    assert os.environ["MLFLOW_LOGGING_LEVEL"] == "WARNING"
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "true"
    # The UI's model-training view: without the parameter it opens on GenAI traces.
    assert runs_page("http://mlflow:5000/", "7") == (
        "http://mlflow:5000/#/experiments/7/runs?workflowType=machine_learning"
    )


def test_a_multiclass_model_is_evaluated_per_class() -> None:
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    names = ["petal_length", "petal_width", "sepal_length"]
    frame = iris.data.iloc[:, [2, 3, 0]].set_axis(names, axis=1)
    frame["species"] = iris.target.map(dict(enumerate(iris.target_names))).astype(str)
    classes = sorted(iris.target_names.tolist())
    contract = Contract(
        name="iris",
        target=Column(name="species", type="category", allowed=classes),
        features=[Column(name=name, type="float") for name in names],
    )
    estimator = make_estimator(CLASSIFICATION, "logistic_regression", {"max_iter": 500}, seed=0)
    inputs, target = model_inputs(frame, contract), frame["species"]
    model = build_pipeline(contract, estimator).fit(inputs, target)

    metrics = CLASSIFICATION.score(model, inputs, target, classes)
    assert metrics["roc_auc"] > 0.9
    figures, tables = CLASSIFICATION.plots(model, inputs, target, classes)
    assert set(figures) == {"confusion_matrix", "roc_curve", "precision_recall"}
    assert sorted(tables["roc"]["class"].unique()) == classes  # one curve per class
    per_class = tables["per_class"].set_index("class")
    assert list(per_class.index) == classes
    assert per_class["support"].sum() == len(frame)
    assert metrics["f1"] == pytest.approx(per_class["f1-score"].mean())  # macro = mean of classes
    legend = figures["roc_curve"].axes[0].get_legend_handles_labels()[1]
    assert all(any(label in text for text in legend) for label in classes)
    behaviour = run_behavioural_tests(
        model, frame, frame, contract, CLASSIFICATION, DirectionalSettings()
    )
    typical = [test.name for test in behaviour if test.kind == "minimum functionality"]
    assert typical == [f"typical {label} case" for label in classes]


def test_the_directional_test_follows_params_for_a_confounded_feature() -> None:
    # x1 and x2 measure the same thing; given x2, more x1 means less y, although x1 and y
    # rise together: the automatic choice expects "up" and would block a correct model.
    rng = np.random.default_rng(0)
    common = rng.normal(size=400)
    x1, x2 = common + 0.1 * rng.normal(size=400), common + 0.1 * rng.normal(size=400)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "y": 2 * x2 - x1 + 0.01 * rng.normal(size=400)})
    contract = Contract(
        name="confounded",
        target=Column(name="y", type="float"),
        features=[Column(name="x1", type="float"), Column(name="x2", type="float")],
    )
    estimator = make_estimator(REGRESSION, "ridge", {"alpha": 1e-3}, seed=0)
    model = build_pipeline(contract, estimator).fit(model_inputs(frame, contract), frame["y"])
    assert frame["x1"].corr(frame["y"]) > 0

    def directional(choice: DirectionalSettings) -> tuple[bool, str, str]:
        [result] = [
            test
            for test in run_behavioural_tests(model, frame, frame, contract, REGRESSION, choice)
            if test.kind == "directional"
        ]
        return result.passed, result.name, result.detail

    assert not directional(DirectionalSettings(feature="x1"))[0]  # expects up: wrong here
    passed, name, _ = directional(DirectionalSettings(feature="x1", direction="down"))
    assert passed
    assert name == "x1 +1 std moves the prediction down"
    off = DirectionalSettings(feature="off", reason="x1 is confounded with x2")
    assert directional(off) == (
        True,
        "directional test",
        "off in params.yaml: x1 is confounded with x2",
    )
    with pytest.raises(ProjectError, match="'size' is not a numeric feature of the contract"):
        directional(DirectionalSettings(feature="size"))
    with pytest.raises(ValueError, match="no reason is given"):
        DirectionalSettings(feature="off")


@pytest.mark.parametrize("allowed", [["yes", "no"], ["no", "yes"]])
def test_the_positive_class_is_the_contracts_last_whatever_its_spelling(
    frame: pd.DataFrame, allowed: list[str]
) -> None:
    contract = CONTRACT.model_copy(
        update={"target": Column(name="bought", type="category", allowed=allowed)}
    )
    estimator = make_estimator(CLASSIFICATION, "logistic_regression", {"C": 10.0}, seed=0)
    model = build_pipeline(contract, estimator).fit(model_inputs(frame, contract), frame["bought"])
    metrics = CLASSIFICATION.score(model, model_inputs(frame, contract), frame["bought"], allowed)
    assert metrics["roc_auc"] > 0.9  # 1 - AUC if the columns were read in the wrong order
    recall = model.predict(model_inputs(frame, contract))[frame["bought"] == allowed[-1]]
    assert metrics["recall"] == pytest.approx(float(np.mean(recall == allowed[-1])))


def test_multiclass_metrics_take_the_contracts_class_order() -> None:
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.data.set_axis(["a", "b", "c", "d"], axis=1)
    frame["species"] = iris.target.map(dict(enumerate(iris.target_names))).astype(str)
    unsorted = ["virginica", "setosa", "versicolor"]
    contract = Contract(
        name="iris",
        target=Column(name="species", type="category", allowed=unsorted),
        features=[Column(name=name, type="float") for name in "abcd"],
    )
    estimator = make_estimator(CLASSIFICATION, "logistic_regression", {"max_iter": 500}, seed=0)
    inputs = model_inputs(frame, contract)
    model = build_pipeline(contract, estimator).fit(inputs, frame["species"])
    as_given = CLASSIFICATION.score(model, inputs, frame["species"], unsorted)
    assert as_given == CLASSIFICATION.score(model, inputs, frame["species"], sorted(unsorted))


def test_a_metric_that_cannot_be_computed_fails_the_gate(settings: Settings) -> None:
    from {{ cookiecutter.package_name }}.evaluate import (
        threshold_failures,
    )

    metric = settings.evaluate.primary_metric
    [failure] = threshold_failures(
        settings.model_copy(
            update={"evaluate": settings.evaluate.model_copy(update={"thresholds": {}})}
        ),
        {metric: float("nan")},
        {metric: 0.5},
    )
    assert f"{metric} cannot be computed on the held-out rows" in failure


def paired(
    task: Task,
    metric: str,
    truth: pd.Series,
    champion: Scored,
    challenger: Scored,
    classes: tuple[str, ...] | list[str] = (),
) -> PairedComparison:
    return paired_bootstrap(
        task,
        metric,
        truth,
        champion,
        challenger,
        list(classes),
        resamples=500,
        confidence=0.95,
        seed=0,
    )


def test_the_paired_bootstrap_sees_a_real_gain_and_not_a_noisy_one() -> None:
    rng = np.random.default_rng(0)
    truth = pd.Series(rng.normal(100, 20, size=300))
    noise = rng.normal(0, 10, size=300)
    good = Scored((truth + noise).to_numpy(), None)
    better = Scored((truth + noise * 0.5).to_numpy(), None)
    clear = paired(REGRESSION, "rmse", truth, good, better)
    assert clear.gain > 0  # RMSE is lower: the gain is oriented, positive means better
    assert clear.better_by(0.0)
    assert clear.low <= clear.gain <= clear.high
    assert not paired(REGRESSION, "rmse", truth, better, good).better_by(0.0)
    # The same model twice, or one a hair apart on 300 rows: not better with 95% confidence.
    twin = paired(REGRESSION, "rmse", truth, good, good)
    assert (twin.gain, twin.low, twin.high) == (0.0, 0.0, 0.0)
    assert not twin.better_by(0.0)
    nudged = Scored((truth + noise).to_numpy() + rng.normal(0, 1, size=300), None)
    assert not paired(REGRESSION, "rmse", truth, good, nudged).better_by(0.0)
    # A margin the whole interval must clear.
    assert not clear.better_by(clear.gain)


def test_the_paired_bootstrap_scores_classes_by_probability() -> None:
    rng = np.random.default_rng(1)
    truth = pd.Series(rng.choice(["no", "yes"], size=200))
    signal = (truth == "yes").to_numpy(dtype=float)

    def scored(noise: float) -> Scored:
        yes = np.clip(signal * 0.6 + 0.2 + rng.normal(0, noise, size=200), 0, 1)
        return Scored(np.where(yes > 0.5, "yes", "no"), np.column_stack([1 - yes, yes]))

    result = paired(CLASSIFICATION, "roc_auc", truth, scored(0.4), scored(0.1), ["no", "yes"])
    assert result.challenger > result.champion
    assert result.better_by(0.0)
    assert result.rows == 200


def test_a_drop_on_few_rows_is_judged_with_both_figures_noise() -> None:
    """A window and a held-out set from one population: the drop's interval spans zero; with
    errors twice as large it does not."""
    rng = np.random.default_rng(2)

    def rows(count: int, noise: float) -> tuple[pd.Series, Scored]:
        truth = pd.Series(rng.normal(0, 1, size=count))
        return truth, Scored(truth.to_numpy() + rng.normal(0, noise, size=count), None)

    held_out = rows(40, 0.5)
    low, high = drop_interval(
        REGRESSION, "rmse", held_out, rows(35, 0.5), [], resamples=400, confidence=0.95, seed=0
    )
    assert low < 0 < high
    low, _ = drop_interval(
        REGRESSION, "rmse", held_out, rows(200, 1.0), [], resamples=400, confidence=0.95, seed=0
    )
    assert low > 0.3  # twice the error: at least 30% worse, with confidence
