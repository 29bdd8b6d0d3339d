"""Stage `train`: fit a pipeline built from the data contract and track it in MLflow.

Every trained model is registered; the promotion gate decides later whether it serves.
"""

from __future__ import annotations

import hashlib
import json
import subprocess  # asks git for the commit  # nosec B404
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .bundle import model_inputs, write_model_files
from .comparison import outputs_frame, score_rows
from .contract import Contract
from .errors import ProjectError
from .explain import background
from .onnx_model import MISSING_CATEGORY
from .rows import evaluation_split
from .settings import Settings
from .tabular import read_table
from .task import Task, load_class

if TYPE_CHECKING:  # search.py imports this module: its result type only, for annotations
    from .search import SearchResult

SERVING_ARTIFACTS = "serving"
# The training part's out-of-fold answers (cross-validation), kept with the run.
TRAINING_ARTIFACTS = "training"
CV_OUTPUTS_FILE = "cv_outputs.csv"


@dataclass(frozen=True)
class TrainResult:
    """What `train` produced: the MLflow run, the registered version, cross-validation scores."""

    run_id: str
    model_name: str
    model_version: str
    primary_metric: str
    cv_mean: float
    cv_std: float
    train_rows: int
    test_rows: int
    data_md5: str

    def save(self, path: Path) -> None:
        """Write the result for the next stages (and for DVC)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> TrainResult:
        """Read what the last `train` wrote."""
        if not path.is_file():
            raise ProjectError(f"{path} not found; fix: run the train stage first (dvc repro)")
        return cls(**json.loads(path.read_text()))


def make_estimator(task: Task, name: str, hyperparameters: dict[str, Any], seed: int) -> Any:
    """The estimator `name` with `hyperparameters`; unknown names are named with the valid ones."""
    choices = task.estimators
    if name not in choices:
        raise ProjectError(
            f"train.estimator '{name}' is not a {task} estimator; use one of {', '.join(choices)}"
        )
    estimator_class = load_class(choices[name])
    class_name = estimator_class.__name__
    valid = estimator_class().get_params()
    unknown = sorted(set(hyperparameters) - set(valid))
    if unknown:
        raise ProjectError(
            f"train.hyperparameters: {', '.join(unknown)} not accepted by {class_name}; "
            f"valid: {', '.join(sorted(valid))}"
        )
    seeded = {"random_state": seed} if "random_state" in valid else {}
    return estimator_class(**{**seeded, **hyperparameters})


# Trees split on thresholds, so scaling changes nothing for them but rounding: the ONNX graph
# computes in float32, and a scaled value rounded next to a threshold took the other branch
# (3 of 112 breast-cancer rows, |dp| 0.02); unscaled, the export matches to 1e-7.
SCALE_FREE_MODULES = ("sklearn.ensemble.", "sklearn.tree.")


def build_pipeline(contract: Contract, estimator: Any) -> Any:
    """Impute, scale numbers (for models that are not trees) and one-hot encode categories."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [column.name for column in contract.features if column.is_numeric]
    categorical = [column.name for column in contract.features if not column.is_numeric]
    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if not type(estimator).__module__.startswith(SCALE_FREE_MODULES):
        numeric_steps.append(("scale", StandardScaler()))
    features = ColumnTransformer(
        [
            ("numeric", Pipeline(numeric_steps), numeric),
            (
                "categorical",
                Pipeline(
                    [
                        (
                            "impute",
                            SimpleImputer(
                                missing_values=MISSING_CATEGORY, strategy="most_frequent"
                            ),
                        ),
                        ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            ),
        ],
        verbose_feature_names_out=False,
    )
    return Pipeline([("features", features), ("model", estimator)])


def configured_pipeline(settings: Settings, contract: Contract) -> Any:
    """The estimator params.yaml names, in the contract's pipeline, not fitted yet."""
    train = settings.train
    estimator = make_estimator(
        settings.task, train.estimator, dict(train.hyperparameters), train.seed
    )
    return build_pipeline(contract, estimator)


def fit_pipeline(settings: Settings, contract: Contract, rows: pd.DataFrame) -> Any:
    """The configured pipeline fitted on `rows` (features and target)."""
    pipeline = configured_pipeline(settings, contract)
    return pipeline.fit(model_inputs(rows, contract), rows[contract.target.name])


def file_md5(path: Path) -> str:
    """The file's MD5, which is also how DVC identifies a file's version."""
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def git_commit() -> str:
    """The current commit, or 'none' outside a repository or before its first commit."""
    try:
        result = subprocess.run(  # a fixed git command from PATH, no shell  # nosec B603 B607
            ["git", "rev-parse", "HEAD"],  # noqa: S607 - git from PATH, as DVC uses it
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return "none"
    return result.stdout.strip()


def cross_validate(
    pipeline: Any,
    inputs: pd.DataFrame,
    target: pd.Series,
    settings: Settings,
    classes: list[str],
    report: Callable[[int, float], None] | None = None,
) -> tuple[np.ndarray[Any, Any], pd.DataFrame]:
    """Primary-metric scores over `cv_folds` folds of the training part, and its answers.

    Every row's out-of-fold answer (`comparison.outputs_frame`): what monitoring expects.
    `report(fold, running mean)` after each fold lets a search stop a poor trial early.
    """
    from sklearn.base import clone

    task = settings.task
    folds = task.folds(settings.train.cv_folds, settings.train.seed)
    scores, answers = [], []
    for fit_rows, held_rows in folds.split(inputs, target):
        fold_model = clone(pipeline).fit(inputs.iloc[fit_rows], target.iloc[fit_rows])
        held_inputs, held_target = inputs.iloc[held_rows], target.iloc[held_rows]
        scored = score_rows(task, fold_model, held_inputs, classes)
        metrics = task.metrics_of(held_target, scored.predicted, scored.scores, classes)
        scores.append(metrics[settings.evaluate.primary_metric])
        answers.append(outputs_frame(held_target, scored, classes))
        if report is not None:
            report(len(scores) - 1, float(np.mean(scores)))
    return np.array(scores), pd.concat(answers, ignore_index=True)


def _log_serving_bundle(pipeline: Any, contract: Contract, rows: pd.DataFrame, seed: int) -> None:
    """Log the model as serving loads it (joblib + contract), so serving needs no MLflow.

    With background rows from `rows` (training rows only) for the explanations.
    """
    import mlflow

    encoded = background(pipeline, model_inputs(rows, contract), seed)
    with tempfile.TemporaryDirectory() as tmp:
        write_model_files(Path(tmp), pipeline, contract, encoded)
        mlflow.log_artifacts(tmp, SERVING_ARTIFACTS)


@dataclass(frozen=True)
class Fitted:
    """A pipeline fitted on the training part, with its CV scores and both parts' rows."""

    pipeline: Any
    cv_scores: np.ndarray[Any, Any]
    cv_outputs: pd.DataFrame
    train_rows: pd.DataFrame
    test_rows: pd.DataFrame
    data_md5: str
    # The hyperparameters fitted with: params.yaml's, with a search's best values over them.
    hyperparameters: dict[str, Any]
    search: SearchResult | None = None


def fit(settings: Settings, contract: Contract) -> Fitted:
    """Split off the held-out rows (written for `evaluate`), cross-validate, fit the rest."""
    frame = read_table(settings.data.train_path, contract)
    target_name = contract.target.name
    train_rows, test_rows = evaluation_split(frame, settings, contract)
    test_file = settings.data.test_path
    test_file.parent.mkdir(parents=True, exist_ok=True)
    test_rows.to_csv(test_file, index=False)
    inputs, target = model_inputs(train_rows, contract), train_rows[target_name]
    searched = None
    if settings.train.search.trials:
        from .search import search

        searched = search(settings, contract, inputs, target)
        hyperparameters = {**settings.train.hyperparameters, **searched.best}
        train = settings.train.model_copy(update={"hyperparameters": hyperparameters})
        settings = settings.model_copy(update={"train": train})
    pipeline = configured_pipeline(settings, contract)
    classes = list(contract.target.allowed or [])
    cv_scores, cv_outputs = cross_validate(pipeline, inputs, target, settings, classes)
    pipeline.fit(inputs, target)
    data_md5 = file_md5(settings.data.train_path)
    hyperparameters = dict(settings.train.hyperparameters)
    return Fitted(
        pipeline, cv_scores, cv_outputs, train_rows, test_rows, data_md5, hyperparameters, searched
    )


def _search_params(searched: SearchResult | None) -> dict[str, Any]:
    """What the search did, for the run's parameters (nothing when it was off)."""
    if searched is None:
        return {}
    return {"search_trials": len(searched.trials), "search_best_trial": searched.best_number}


def _log_run(settings: Settings, contract: Contract, fitted: Fitted) -> None:
    """Tags, parameters, CV metrics and both datasets of the active MLflow run."""
    import mlflow
    from mlflow.data.dataset_source_registry import get_dataset_source_from_json
    from mlflow.data.pandas_dataset import from_pandas

    metric = settings.evaluate.primary_metric
    mlflow.set_tags(
        {
            "git_commit": git_commit(),
            "dvc_data_md5": fitted.data_md5,
            "task": str(settings.task),
            "estimator": settings.train.estimator,
        }
    )
    mlflow.log_params(
        {
            "estimator": settings.train.estimator,
            **fitted.hyperparameters,
            "test_fraction": settings.train.test_fraction,
            "cv_folds": settings.train.cv_folds,
            "seed": settings.train.seed,
            "split_seed": settings.data.seed,  # salts the held-out split (rows.py)
            "train_rows": len(fitted.train_rows),
            "test_rows": len(fitted.test_rows),
            **_search_params(fitted.search),
        }
    )
    mlflow.log_metrics(
        {
            f"cv_{metric}_mean": float(fitted.cv_scores.mean()),
            f"cv_{metric}_std": float(fitted.cv_scores.std()),
        }
    )
    # Named as a local file outright: MLflow's guess from a path warns that two sources match.
    source = get_dataset_source_from_json(
        json.dumps({"uri": str(settings.data.train_path)}), "local"
    )
    for rows, context in ((fitted.train_rows, "training"), (fitted.test_rows, "evaluation")):
        with warnings.catch_warnings():
            # MLflow hints that integer columns cannot hold gaps; the contract already says
            # which columns are int and whether they may be null (the model sees floats).
            warnings.filterwarnings("ignore", message=r"Hint: Inferred schema contains integer")
            dataset = from_pandas(
                rows,
                source=source,
                targets=contract.target.name,
                name=f"{contract.name}-{context}",
                digest=fitted.data_md5[:8],
            )
            mlflow.log_input(dataset, context=context)  # infers the schema here


def run_name(settings: Settings, fitted: Fitted) -> str:
    """Which stage and data made the run, as the MLflow UI lists it."""
    rows = len(fitted.train_rows) + len(fitted.test_rows)
    return f"train {settings.data.train_path.name} {fitted.data_md5[:8]} ({rows} rows)"


def run_description(settings: Settings, fitted: Fitted) -> str:
    """The run's description (Markdown): the data, the split, the estimator and the code."""
    train = settings.train
    commit = git_commit()
    return (
        f"Made by the `train` stage from `{settings.data.train_path}` (md5 `{fitted.data_md5}`): "
        f"{len(fitted.train_rows)} rows trained, {len(fitted.test_rows)} held out for "
        f"`evaluate`. Estimator `{train.estimator}`"
        + (
            ""
            if fitted.search is None
            else f" with the best of {len(fitted.search.trials)} search trials "
            f"(trial {fitted.search.best_number})"
        )
        + f", {train.cv_folds}-fold CV "
        f"{settings.evaluate.primary_metric} {fitted.cv_scores.mean():.4f} "
        f"± {fitted.cv_scores.std():.4f}; "
        + (
            "no git commit (not a repository, or nothing committed yet)."
            if commit == "none"
            else f"git commit `{commit[:12]}`."
        )
    )


def _register(model_info: Any, run_id: str, settings: Settings, description: str) -> Any:
    """A new version of the registered model (created on first use) for the logged model.

    The client's calls, not `mlflow.register_model`, which prints two lines of its own.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    client, name = mlflow.MlflowClient(), settings.registry.model_name
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code not in {"RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"}:
            raise
    return client.create_model_version(
        name,
        model_info.model_uri,
        run_id=run_id,
        model_id=model_info.model_id,
        description=description,
    )


def run_train(settings: Settings, contract: Contract) -> TrainResult:
    """Fit on the training pool minus a held-out test split; log and register the model."""
    from . import tracking

    tracking.configure(settings.registry)  # fail fast if the server is down: nothing logged yet
    import mlflow
    import skops.io
    from mlflow.models import infer_signature

    fitted = fit(settings, contract)
    pipeline = fitted.pipeline
    with tracking.reported_failures("closing runs left running"):
        tracking.close_abandoned_runs(settings.registry)
    description = run_description(settings, fitted)
    with (
        tracking.reported_failures("training"),
        mlflow.start_run(run_name=run_name(settings, fitted), description=description) as run,
    ):
        mlflow.set_tag(tracking.PROJECT_TAG, tracking.project_id())
        _log_run(settings, contract, fitted)
        if fitted.search is not None:
            from .search import log_trials

            project = {tracking.PROJECT_TAG: tracking.project_id()}
            metric = settings.evaluate.primary_metric
            log_trials(fitted.search, run.info.run_id, metric, project)
        example = model_inputs(fitted.train_rows.head(3), contract)
        model_info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(example, pipeline.predict(example)),
            input_example=example,
            pip_requirements=tracking.model_requirements(),
            # The model was built here, from scikit-learn's own classes: trust exactly those.
            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)),
        )
        _log_serving_bundle(pipeline, contract, fitted.train_rows, settings.train.seed)
        with tempfile.TemporaryDirectory() as tmp:
            answers = Path(tmp) / CV_OUTPUTS_FILE
            fitted.cv_outputs.to_csv(answers, index=False)
            mlflow.log_artifact(str(answers), TRAINING_ARTIFACTS)
        # Registered last: a version never exists without the files that serve it.
        version = _register(model_info, run.info.run_id, settings, description)
    result = TrainResult(
        run_id=run.info.run_id,
        model_name=settings.registry.model_name,
        model_version=str(version.version),
        primary_metric=settings.evaluate.primary_metric,
        cv_mean=float(fitted.cv_scores.mean()),
        cv_std=float(fitted.cv_scores.std()),
        train_rows=len(fitted.train_rows),
        test_rows=len(fitted.test_rows),
        data_md5=fitted.data_md5,
    )
    result.save(settings.train.run_file)
    return result
