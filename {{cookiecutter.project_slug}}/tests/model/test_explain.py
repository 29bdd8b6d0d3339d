"""Explanations: for every estimator, on the project's data and on text categories with blanks
(multiclass for a classification project), a record's base value plus its attributions is the
model's own output (SHAP's additivity); the file command marks broken rows and names a missing
column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.bundle import model_inputs
from {{ cookiecutter.package_name }}.contract import Contract
from {{ cookiecutter.package_name }}.errors import ProjectError
from {{ cookiecutter.package_name }}.explain import Explainer, background, explain_file
from {{ cookiecutter.package_name }}.profile import propose_contract
from {{ cookiecutter.package_name }}.settings import Settings
from {{ cookiecutter.package_name }}.task import Task, load_class, task_named
from {{ cookiecutter.package_name }}.train import build_pipeline, make_estimator

LINEAR = {"classification": "logistic_regression", "regression": "ridge"}
# Estimators SHAP has no exact explainer for: the permutation explainer's path.
OTHER_ESTIMATORS = {
    "classification": "sklearn.naive_bayes:GaussianNB",
    "regression": "sklearn.neighbors:KNeighborsRegressor",
}


def mixed_data(settings: Settings) -> tuple[pd.DataFrame, Contract]:
    """Numbers, a text category with blanks and a target: three classes, or a number."""
    rng = np.random.default_rng(7)
    rows = 300
    frame = pd.DataFrame(
        {
            "size": rng.normal(10, 3, rows),
            "colour": pd.Series(rng.choice(["red", "green", "blue", ""], rows)).replace("", None),
            "age": rng.integers(0, 40, rows).astype(float),
        }
    )
    signal = frame["size"] + 4 * (frame["colour"] == "red") - 0.1 * frame["age"]
    if settings.task.prediction_is_categorical:
        frame["target"] = pd.cut(signal, 3, labels=["low", "mid", "high"]).astype(str)
    else:
        frame["target"] = signal + rng.normal(0, 1, rows)
    contract, _ = propose_contract(frame, "target", "mixed")
    return frame, contract


def estimators(task: Task) -> list[Any]:
    named = [make_estimator(task, name, {}, seed=0) for name in task.estimators]
    return [*named, load_class(OTHER_ESTIMATORS[str(task)])()]


def datasets(
    settings: Settings, contract: Contract, sample: pd.DataFrame
) -> list[tuple[pd.DataFrame, Contract]]:
    return [(sample, contract), mixed_data(settings)]


def test_attributions_add_up_to_the_models_output(
    settings: Settings, contract: Contract, sample: pd.DataFrame
) -> None:
    for frame, described in datasets(settings, contract, sample):
        inputs, target = model_inputs(frame, described), frame[described.target.name]
        classes = list(described.target.allowed or [])
        for estimator in estimators(settings.task):
            pipeline = build_pipeline(described, estimator).fit(inputs, target)
            explainer = Explainer(pipeline, classes, background(pipeline, inputs, seed=0))
            shown = inputs.sample(8, random_state=1)
            found = explainer.explain(shown)
            name = f"{type(estimator).__name__} on {described.name}"
            assert found.features == tuple(described.feature_names), name
            assert found.values.shape == (len(shown), len(described.features)), name
            expected = explainer.model_output(shown, found)
            np.testing.assert_allclose(found.outputs, expected, atol=1e-6, err_msg=name)
            assert np.abs(found.values).sum() > 0, name  # not additive by being all zero


def test_a_binary_targets_positive_class_is_its_last_whatever_the_order(
    settings: Settings,
) -> None:
    # The classifiers whatever this project's task: explain.py serves both.
    frame, _ = mixed_data(settings)
    frame = frame.assign(target=np.where(frame["size"] > frame["size"].median(), "yes", "no"))
    described = propose_contract(frame, "target", "binary")[0]
    for order in (["no", "yes"], ["yes", "no"]):
        target = described.target.model_copy(update={"allowed": order})
        binary = described.model_copy(update={"target": target})
        inputs = model_inputs(frame, binary)
        for estimator in estimators(task_named("classification")):
            pipeline = build_pipeline(binary, estimator).fit(inputs, frame["target"])
            explainer = Explainer(pipeline, order, background(pipeline, inputs, seed=0))
            found = explainer.explain(inputs.head(5))
            assert set(found.explained) == {order[-1]}
            np.testing.assert_allclose(
                found.outputs, explainer.model_output(inputs.head(5), found), atol=1e-6
            )


def test_the_file_command_explains_good_rows_and_marks_broken_ones(
    settings: Settings,
    contract: Contract,
    sample: pd.DataFrame,
    champion_bundle: Path,
    tmp_path: Path,
) -> None:
    records = sample[contract.feature_names].head(6).astype(object)
    first = contract.features[0]
    records.loc[records.index[2], first.name] = "not-a-value"
    source, output = tmp_path / "records.csv", tmp_path / "out" / "shap.csv"
    records.to_csv(source, index=False)
    done = explain_file(champion_bundle, settings.task, source, output, max_rows=100)
    table = pd.read_csv(output)
    assert (done.rows, done.explained) == (6, 5)
    assert len(table) == 6
    assert first.name in str(table.loc[2, "problem"])
    assert table.drop(index=2)["problem"].isna().all()
    shap_columns = [f"shap_{name}" for name in contract.feature_names]
    good = table.drop(index=2)
    sums = good["base_value"] + good[shap_columns].sum(axis=1)
    np.testing.assert_allclose(sums, good["model_value"], atol=1e-6)
    assert done.largest_gap < 1e-6


def test_the_file_command_names_a_missing_column(
    settings: Settings,
    contract: Contract,
    sample: pd.DataFrame,
    champion_bundle: Path,
    tmp_path: Path,
) -> None:
    missing = contract.feature_names[-1]
    source = tmp_path / "records.csv"
    sample[contract.feature_names].drop(columns=[missing]).head(3).to_csv(source, index=False)
    with pytest.raises(ProjectError, match=f"missing contract columns {missing}"):
        explain_file(champion_bundle, settings.task, source, tmp_path / "out.csv", max_rows=10)


def test_the_file_command_refuses_no_rows_and_an_unwritable_output(
    settings: Settings,
    contract: Contract,
    sample: pd.DataFrame,
    champion_bundle: Path,
    tmp_path: Path,
) -> None:
    """As `score` does: a header alone is no input, and a bad output path is one line."""
    source = tmp_path / "records.csv"
    sample[contract.feature_names].head(0).to_csv(source, index=False)
    with pytest.raises(ProjectError, match=r"records\.csv: no rows; fix"):
        explain_file(champion_bundle, settings.task, source, tmp_path / "out.csv", max_rows=10)
    sample[contract.feature_names].head(2).to_csv(source, index=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ProjectError, match=r"a-file.*; fix: make the input readable"):
        explain_file(champion_bundle, settings.task, source, blocker / "out.csv", max_rows=10)


def test_without_background_rows_trees_are_explained_and_a_linear_model_names_the_fix(
    settings: Settings, contract: Contract, sample: pd.DataFrame
) -> None:
    inputs, target = model_inputs(sample, contract), sample[contract.target.name]
    classes = list(contract.target.allowed or [])
    pipelines = {
        name: build_pipeline(contract, make_estimator(settings.task, name, {}, 0))
        for name in ("random_forest", LINEAR[str(settings.task)])
    }
    fitted = {name: pipeline.fit(inputs, target) for name, pipeline in pipelines.items()}
    trees = Explainer(fitted["random_forest"], classes, None).explain(inputs.head(3))
    assert trees.values.shape == (3, len(contract.features))
    with pytest.raises(ProjectError, match="fix: retrain and promote"):
        Explainer(fitted[LINEAR[str(settings.task)]], classes, None)
