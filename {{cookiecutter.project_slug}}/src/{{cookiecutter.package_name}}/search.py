"""Hyperparameter search (`train.search`): Optuna's TPE over the cross-validated primary metric.

Seeded by `train.seed`; a trial whose running CV mean falls below the median of earlier trials
at the same fold is pruned. The search runs before the training run starts (a bad range fails
with nothing logged); each trial is then recorded as an MLflow run nested under it, with its
real start and end times, its values, its score and its state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from .contract import Contract
from .errors import ProjectError
from .settings import HyperParameter, SearchRange, Settings
from .task import load_class
from .train import build_pipeline, cross_validate, make_estimator

PARENT_TAG = "mlflow.parentRunId"  # how MLflow nests a run under another


@dataclass(frozen=True)
class SearchResult:
    """The searched values of the best trial, its number, and every trial (Optuna's records)."""

    best: dict[str, HyperParameter]
    best_number: int
    trials: list[Any]


def _suggest(trial: Any, name: str, space: SearchRange) -> HyperParameter:
    if space.choices is not None:
        value: HyperParameter = trial.suggest_categorical(name, space.choices)
        return value
    low, high = space.low, space.high
    if low is None or high is None:  # the settings refuse this; for the type checker
        raise ProjectError(f"train.search.space.{name}: give low and high, or choices")
    if space.integer:
        return int(trial.suggest_int(name, int(low), int(high), log=space.log))
    return float(trial.suggest_float(name, low, high, log=space.log))


def _check_names(settings: Settings) -> None:
    """Every searched name is a parameter of the estimator, named before any trial runs."""
    train = settings.train
    if train.estimator not in settings.task.estimators:  # named with the valid ones
        make_estimator(settings.task, train.estimator, {}, train.seed)
    estimator = load_class(settings.task.estimators[train.estimator])
    valid = estimator().get_params()
    unknown = sorted(set(train.search.space) - set(valid))
    if unknown:
        raise ProjectError(
            f"train.search.space: {', '.join(unknown)} not accepted by {estimator.__name__}; "
            f"valid: {', '.join(sorted(valid))}"
        )


def search(
    settings: Settings, contract: Contract, inputs: pd.DataFrame, target: pd.Series
) -> SearchResult:
    """Run the study on the training part; the best trial's values for the searched names."""
    import optuna

    train, metric = settings.train, settings.evaluate.primary_metric
    _check_names(settings)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    classes = list(contract.target.allowed or [])

    def objective(trial: Any) -> float:
        values = {name: _suggest(trial, name, space) for name, space in train.search.space.items()}
        estimator = make_estimator(
            settings.task, train.estimator, {**train.hyperparameters, **values}, train.seed
        )

        def report(fold: int, running_mean: float) -> None:
            trial.report(running_mean, fold)
            if trial.should_prune():
                raise optuna.TrialPruned

        pipeline = build_pipeline(contract, estimator)
        scores, _ = cross_validate(pipeline, inputs, target, settings, classes, report)
        return float(scores.mean())

    higher = settings.task.higher_is_better(metric)
    study = optuna.create_study(
        direction="maximize" if higher else "minimize",
        sampler=optuna.samplers.TPESampler(seed=train.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )
    study.optimize(objective, n_trials=train.search.trials, timeout=train.search.timeout_seconds)
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not finished:
        raise ProjectError(
            f"no search trial finished within train.search.timeout_seconds "
            f"({train.search.timeout_seconds:g} s); fix: raise it, or lower train.search.trials"
        )
    best = study.best_trial
    return SearchResult(dict(best.params), best.number, list(study.trials))


def log_trials(result: SearchResult, parent_run_id: str, metric: str, tags: dict[str, str]) -> None:
    """Each trial as a finished (or, when pruned, killed) MLflow run nested under the parent."""
    import mlflow
    from mlflow.entities import Metric, Param

    client = mlflow.MlflowClient()
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    for trial in result.trials:
        start = int(trial.datetime_start.timestamp() * 1000)
        duration = trial.duration.total_seconds() if trial.duration else 0.0
        state = trial.state.name.lower()
        own = {
            PARENT_TAG: parent_run_id,
            "mlflow.runName": f"search trial {trial.number} ({state})",
            "search_state": state,
        }
        run = client.create_run(experiment_id, start_time=start, tags={**tags, **own})
        params = [Param(name, str(value)) for name, value in trial.params.items()]
        curve = [
            Metric(f"cv_{metric}_running_mean", value, start, step)
            for step, value in sorted(trial.intermediate_values.items())
        ]
        done = state == "complete"  # a pruned trial's value is only its last fold's mean
        score = [Metric(f"cv_{metric}_mean", trial.value, start, 0)] if done else []
        client.log_batch(run.info.run_id, metrics=curve + score, params=params)
        status = "FINISHED" if state == "complete" else "KILLED"
        client.set_terminated(run.info.run_id, status, end_time=start + int(duration * 1000))
