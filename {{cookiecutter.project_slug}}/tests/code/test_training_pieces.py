"""Training building blocks on synthetic data: estimators, the contract-driven pipeline, metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.contract import (
    Column,
    Contract,
)
from {{ cookiecutter.package_name }}.errors import (
    ProjectError,
)
from {{ cookiecutter.package_name }}.metrics import (
    is_better,
    meets_threshold,
)
from {{ cookiecutter.package_name }}.settings import (
    Settings,
)
from {{ cookiecutter.package_name }}.train import (
    build_pipeline,
    make_estimator,
    model_inputs,
)

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
    estimator = make_estimator("classification", "logistic_regression", {"C": 10.0}, seed=0)
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
            CONTRACT, make_estimator("classification", "random_forest", {"n_estimators": 10}, 7)
        )
        .fit(inputs, frame["bought"])
        .predict_proba(inputs)
        for _ in range(2)
    ]
    np.testing.assert_array_equal(fitted[0], fitted[1])


def test_unknown_estimator_is_named() -> None:
    with pytest.raises(ProjectError, match="'svm' is not a regression estimator; use one of ridge"):
        make_estimator("regression", "svm", {}, seed=0)


def test_unknown_hyperparameter_is_named() -> None:
    with pytest.raises(ProjectError, match="max_dept not accepted by RandomForestClassifier"):
        make_estimator("classification", "random_forest", {"max_dept": 3}, seed=0)


def test_promotion_comparisons_follow_the_metric_direction() -> None:
    assert is_better("classification", "roc_auc", 0.97, 0.96, margin=0.0)
    assert not is_better(
        "classification", "roc_auc", 0.96, 0.96, margin=0.0
    )  # a tie keeps the champion
    assert not is_better("classification", "roc_auc", 0.965, 0.96, margin=0.01)
    assert is_better("regression", "rmse", 50.0, 55.0, margin=1.0)
    assert not is_better("regression", "rmse", 55.0, 50.0, margin=0.0)
    assert meets_threshold("regression", "rmse", 60.0, 60.0)
    assert not meets_threshold("classification", "f1", 0.89, 0.9)


def test_metrics_must_suit_the_task(settings: Settings) -> None:
    wrong = "rmse" if settings.task == "classification" else "roc_auc"
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
