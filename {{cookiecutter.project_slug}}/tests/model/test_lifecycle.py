"""Train on the sample in a throwaway MLflow store: quality gate, promotion gate, rollback."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.bundle import (
    load_champion,
    sha256,
)
from {{ cookiecutter.package_name }}.contract import (
    Contract,
    load_contract,
)
from {{ cookiecutter.package_name }}.errors import (
    ProjectError,
    QualityGateError,
)
from {{ cookiecutter.package_name }}.evaluate import (
    run_evaluate,
)
from {{ cookiecutter.package_name }}.prepare import (
    SKLEARN_PREFIX,
    publish_split,
    run_prepare,
)
from {{ cookiecutter.package_name }}.registry import (
    list_models,
    promote,
    readmit,
    reexport,
    rollback,
)
from {{ cookiecutter.package_name }}.settings import (
    Settings,
)
from {{ cookiecutter.package_name }}.task import (
    load_class,
)
from {{ cookiecutter.package_name }}.train import (
    TrainResult,
    run_train,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Ten boosted stumps: clearly worse than the default model on either task, yet sane enough to
# pass the behavioural tests, so only the promotion gate stands in its way.
WEAK_MODEL = {
    "estimator": "gradient_boosting",
    "hyperparameters": {"max_iter": 10, "max_leaf_nodes": 2},
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Iterator[Path]:
    """A project folder with the sample prepared and an empty local MLflow store."""
    folder = tmp_path_factory.mktemp("lifecycle")
    shutil.copy(PROJECT_ROOT / "contract.yaml", folder / "contract.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield folder


def configured(settings: Settings, **train: object) -> Settings:
    """The project's settings with a lenient bar, so a weak challenger can reach the gate.

    The promotion gate asks for a 50% interval above the margin, not 95%: this module tests the
    sequence (promote, keep, roll back); the bootstrap itself is tested on its own.
    """
    primary = settings.evaluate.primary_metric
    lenient = 0.0 if settings.task.higher_is_better(primary) else 1e9
    evaluate = {"thresholds": {primary: lenient}, "confidence": 0.5}
    return settings.model_copy(
        update={
            "train": settings.train.model_copy(update=train),
            "evaluate": settings.evaluate.model_copy(update=evaluate),
            "registry": settings.registry.model_copy(
                update={"tracking_uri": "sqlite:///mlflow.db"}
            ),
        }
    )


def train_and_evaluate(settings: Settings, contract: Contract) -> TrainResult:
    run_train(settings, contract)
    run_evaluate(settings, contract)
    return TrainResult.load(settings.train.run_file)


def champion_version(settings: Settings) -> str:
    rows = [row for row in list_models(settings) if "champion" in row["aliases"].split(",")]
    assert len(rows) == 1
    return rows[0]["version"]


def check_card(bundle: Path, contract: Contract, version: str, replaced: str, why: str) -> None:
    """The exported card (Markdown and HTML) names its version, the contract's words, and
    what it replaced and why, in the gate's own words."""
    card = (bundle / "model_card.md").read_text()
    assert f"v{version} (champion)" in card
    assert "| invariance |" in card
    assert f"Dataset `{contract.name}`: {contract.description}" in card
    assert f"Replaces: v{replaced}, the champion until this promotion" in card
    assert why in card
    page = (bundle / "model_card.html").read_text()
    assert "<table>" in page
    assert f"v{version} (champion)" in page


def test_lifecycle(workspace: Path, settings: Settings, contract: Contract) -> None:
    if not settings.data.source.startswith(SKLEARN_PREFIX):
        pytest.skip(
            "the weak-then-better sequence is tuned to the bundled sample (data.source "
            "sklearn:...); on your data the weak model may tie with the default"
        )
    lenient, weak = configured(settings), configured(settings, **WEAK_MODEL)
    primary = settings.evaluate.primary_metric
    run_prepare(lenient, contract)
    publish_split(lenient)

    # A weak model that still passes the gate becomes the first champion.
    first = train_and_evaluate(weak, contract)
    assert promote(weak).message.endswith("(no previous champion)")

    # The default model meets the project's real thresholds and behavioural tests, and wins.
    default = train_and_evaluate(
        settings.model_copy(update={"registry": lenient.registry}), contract
    )
    assert json.loads(Path("reports/evaluate/metrics.json").read_text())["passed"] is True
    plots = sorted(Path("reports/evaluate").glob("*.png"))
    assert len(plots) >= 2
    assert len({plot.read_bytes() for plot in plots}) == len(plots), "each plot is its own figure"
    decision = promote(lenient)
    assert decision.promoted
    assert f"of v{first.model_version})" in decision.message
    assert champion_version(lenient) == default.model_version

    # The export is complete and its checksum matches the model file.
    bundle = lenient.registry.export_dir
    metadata = json.loads((bundle / "metadata.json").read_text())
    assert metadata["version"] == default.model_version
    assert metadata["model_sha256"] == sha256(bundle / "model.joblib")
    assert load_contract(bundle / "contract.yaml") == contract
    check_card(bundle, contract, default.model_version, first.model_version, decision.message)

    # A worse challenger is registered but the champion stays; the message gives both figures.
    challenger = train_and_evaluate(weak, contract)
    kept = promote(weak)
    assert not kept.promoted
    assert champion_version(lenient) == default.model_version
    assert f"champion v{default.model_version} stays: {primary}" in kept.message
    assert f"challenger v{challenger.model_version}" in kept.message
    assert json.loads((bundle / "metadata.json").read_text())["version"] == default.model_version

    # Rollback restores the previous champion and its export; there is none before the first.
    # The card comes from the restored version's own run, not from the workspace's last report.
    Path("reports/evaluate/behavioural.json").unlink()
    assert rollback(lenient).champion_version == first.model_version
    assert champion_version(lenient) == first.model_version
    assert json.loads((bundle / "metadata.json").read_text())["version"] == first.model_version
    card = (bundle / "model_card.md").read_text()
    assert f"v{first.model_version} (champion)" in card
    assert "| invariance |" in card
    # The pipeline re-running promote on the version just rolled back from never restores it.
    default.save(lenient.train.run_file)
    again = promote(lenient)
    assert not again.promoted
    assert f"v{default.model_version} was rolled back from" in again.message
    assert champion_version(lenient) == first.model_version
    with pytest.raises(ProjectError, match="nothing to roll back to"):
        rollback(lenient)
    assert len(list_models(lenient)) == 3
    check_history(lenient, first, default, challenger)
    check_readmit_and_repair(lenient, default)


def check_history(
    settings: Settings, first: TrainResult, default: TrainResult, challenger: TrainResult
) -> None:
    """`models` tells each version's story and who decided each step."""
    history = {row["version"]: row["history"] for row in list_models(settings)}
    assert "promoted" in history[first.model_version], history
    assert "by the promotion gate" in history[first.model_version], history
    assert f"kept out (v{default.model_version} stayed)" in history[challenger.model_version]
    assert "rolled back from" in history[default.model_version], history


def check_readmit_and_repair(settings: Settings, rolled_back: TrainResult) -> None:
    """A person re-admits the version rolled back from; a damaged bundle is repaired."""
    version = rolled_back.model_version
    assert "re-admitted" in readmit(settings, int(version))
    assert promote(settings).promoted  # it beats the first champion again
    history = {row["version"]: row["history"] for row in list_models(settings)}
    assert "re-admitted" in history[version], history
    assert history[version].endswith("by the promotion gate (`promote`)"), history

    # A truncated model: the pipeline's promote (the champion stays) exports it again.
    bundle = settings.registry.export_dir
    model = bundle / "model.joblib"
    model.write_bytes(model.read_bytes()[:100])
    stays = promote(settings)
    assert not stays.promoted
    assert "re-exported" in stays.message, stays.message
    assert load_champion(bundle, settings.task).version == version

    # Another version's bundle in place: re-exported too; the recovery command always works.
    first_bundle = json.loads((bundle / "metadata.json").read_text())
    assert first_bundle["version"] == version
    (bundle / "contract.yaml").write_text((bundle / "contract.yaml").read_text() + "# edited\n")
    assert f"v{version} (champion) exported again" in reexport(settings).message
    assert load_champion(bundle, settings.task).version == version


def test_same_data_and_params_reproduce_the_metrics(
    workspace: Path, settings: Settings, contract: Contract
) -> None:
    repeat = configured(settings)
    run_prepare(repeat, contract)
    publish_split(repeat)
    first = run_train(repeat, contract)
    second = run_train(repeat, contract)
    assert first.cv_mean == second.cv_mean
    assert first.cv_std == second.cv_std
    assert first.model_version != second.model_version  # every model is registered


def test_runs_say_which_stage_and_data_made_them(
    workspace: Path, settings: Settings, contract: Contract
) -> None:
    """Named and described for the UI by each stage; the model's environment declared, pinned."""
    from importlib.metadata import version

    import mlflow

    from {{ cookiecutter.package_name }} import tracking

    local = configured(settings)
    run_prepare(local, contract)
    publish_split(local)
    trained = train_and_evaluate(local, contract)
    decision = promote(local)
    client = mlflow.MlflowClient()
    run = client.get_run(trained.run_id)
    rows = trained.train_rows + trained.test_rows
    assert run.info.run_name == f"train train.csv {trained.data_md5[:8]} ({rows} rows)"
    description = run.data.tags[tracking.DESCRIPTION_TAG]
    assert description.startswith(
        f"Made by the `train` stage from `{local.data.train_path}` (md5 `{trained.data_md5}`): "
        f"{trained.train_rows} rows trained, {trained.test_rows} held out"
    )
    assert (
        f"`evaluate`: passes the quality gate on {trained.test_rows} held-out rows" in description
    )
    assert description.endswith(f"`promote`: {decision.message}.")
    registered = client.get_model_version(local.registry.model_name, trained.model_version)
    assert (registered.description or "").startswith("Made by the `train` stage")
    experiment = client.get_experiment(run.info.experiment_id)
    assert tracking.EXPERIMENT_KIND.items() <= experiment.tags.items()
    requirements = Path(mlflow.pyfunc.get_model_dependencies(registered.source)).read_text()
    pinned = {f"{name}=={version(name)}" for name in tracking.MODEL_REQUIREMENTS}
    assert set(requirements.split()) == pinned  # not inferred: no test tools, no guesses


def with_search(settings: Settings, search: dict[str, object]) -> Settings:
    """The settings with `train.search` replaced, validated as params.yaml would be."""
    values = settings.model_dump()
    values["train"]["search"] = search
    return type(settings).model_validate(values)


def two_values_to_search(settings: Settings) -> tuple[str, list[object]]:
    """Two values of the first searched name the estimator takes: small, quick and enough to
    tell trials apart. A space left from another estimator (yours may differ from the
    template's) falls back to a numeric hyperparameter you set and another value: half a
    fraction (up to 1), double anything else."""
    train = settings.train
    accepted = load_class(settings.task.estimators[train.estimator])().get_params()
    for name, space in train.search.space.items():
        if name in accepted:
            if space.choices:
                return name, list(space.choices[:2])
            if space.integer:
                return name, [int(space.low or 0), int(space.high or 1)]
            return name, [space.low, space.high]
    numeric = {
        name: value
        for name, value in train.hyperparameters.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    }
    assert numeric, "give train.search.space a name your estimator takes"
    name, value = next(iter(numeric.items()))
    return name, [value, value / 2 if isinstance(value, float) and value <= 1 else value * 2]


def test_a_search_nests_its_trials_and_registers_the_best(
    workspace: Path, settings: Settings, contract: Contract
) -> None:
    """Trials as nested runs under the training run; the registered model is the best trial's."""
    import mlflow

    from {{ cookiecutter.package_name }}.search import (
        PARENT_TAG,
    )

    base = configured(settings)
    name, choices = two_values_to_search(base)
    search = {"trials": 4, "space": {name: {"choices": choices}}}
    searching = with_search(base, search)
    run_prepare(searching, contract)
    publish_split(searching)
    trained = run_train(searching, contract)
    client = mlflow.MlflowClient()
    parent = client.get_run(trained.run_id)
    trials = client.search_runs(
        [parent.info.experiment_id], f"tags.`{PARENT_TAG}` = '{trained.run_id}'"
    )
    assert len(trials) == 4
    finished = [run for run in trials if run.info.status == "FINISHED"]
    metric = f"cv_{searching.evaluate.primary_metric}_mean"
    higher = searching.task.higher_is_better(searching.evaluate.primary_metric)
    best_score = (max if higher else min)(run.data.metrics[metric] for run in finished)
    assert parent.data.params["search_trials"] == "4"
    [best] = [
        run
        for run in finished
        if run.info.run_name == f"search trial {parent.data.params['search_best_trial']} (complete)"
    ]
    assert best.data.metrics[metric] == best_score
    assert parent.data.params[name] == best.data.params[name]  # the final fit used its value
    registered = client.get_model_version(searching.registry.model_name, trained.model_version)
    assert registered.run_id == trained.run_id

    # A name the estimator does not take is refused before any trial or run.
    before = len(client.search_runs([parent.info.experiment_id]))
    bad = with_search(base, search | {"space": {"not_a_parameter": {"low": 1, "high": 2}}})
    with pytest.raises(ProjectError, match=r"train\.search\.space: not_a_parameter not accepted"):
        run_train(bad, contract)
    assert len(client.search_runs([parent.info.experiment_id])) == before


def test_missed_threshold_names_both_figures(
    workspace: Path, settings: Settings, contract: Contract
) -> None:
    primary = settings.evaluate.primary_metric
    impossible = 1.0001 if settings.task.higher_is_better(primary) else 0.0
    strict = configured(settings)
    strict = strict.model_copy(
        update={
            "evaluate": strict.evaluate.model_copy(update={"thresholds": {primary: impossible}})
        }
    )
    run_prepare(strict, contract)
    publish_split(strict)
    run_train(strict, contract)
    with pytest.raises(
        QualityGateError, match=rf"{primary} [0-9.]+ is (below|above) the threshold"
    ):
        run_evaluate(strict, contract)
    with pytest.raises(ProjectError, match="has not passed the quality gate"):
        promote(strict)


def test_unreachable_server_registers_nothing(
    workspace: Path, settings: Settings, contract: Contract, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = configured(settings)
    before = len(list_models(local))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    with pytest.raises(ProjectError, match=r"http://127\.0\.0\.1:9 is unreachable"):
        run_train(local, contract)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert len(list_models(local)) == before


def test_a_run_left_running_is_closed_as_failed_by_the_next_train(
    workspace: Path, settings: Settings, contract: Contract
) -> None:
    """A stage killed mid-run (or a server lost) leaves a RUNNING run; the next train closes it,
    and only this project's: another folder's run on a shared server is left alone."""
    import mlflow

    from {{ cookiecutter.package_name }} import tracking

    local = configured(settings)
    tracking.configure(local.registry)
    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name(local.registry.experiment)
    assert experiment is not None
    ours = client.create_run(
        experiment.experiment_id, tags={tracking.PROJECT_TAG: tracking.project_id()}
    )
    theirs = client.create_run(experiment.experiment_id, tags={tracking.PROJECT_TAG: "/elsewhere"})
    run_prepare(local, contract)
    publish_split(local)
    trained = run_train(local, contract)
    assert client.get_run(ours.info.run_id).info.status == "FAILED"
    assert client.get_run(theirs.info.run_id).info.status == "RUNNING"
    assert client.get_run(trained.run_id).info.status == "FINISHED"
    client.set_terminated(theirs.info.run_id)


def test_a_version_without_serving_files_is_never_promoted(
    settings: Settings, contract: Contract, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its serving files lost from the artifact store: promote refuses it, tags it, exports
    nothing; the next version is judged as usual."""
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(PROJECT_ROOT / "contract.yaml", tmp_path / "contract.yaml")
    local = configured(settings)
    run_prepare(local, contract)
    publish_split(local)
    broken = train_and_evaluate(local, contract)
    artifacts = Path(
        mlflow.MlflowClient().get_run(broken.run_id).info.artifact_uri.removeprefix("file://")
    )
    shutil.rmtree(artifacts / "serving")
    with pytest.raises(ProjectError, match=f"v{broken.model_version} cannot be served"):
        promote(local)
    assert not (local.registry.export_dir / "metadata.json").exists()
    history = {row["version"]: row for row in list_models(local)}
    assert history[broken.model_version]["aliases"] == "-"
    version = mlflow.MlflowClient().get_model_version(
        local.registry.model_name, broken.model_version
    )
    assert "unservable" in version.tags
    # The next version is judged as usual (the store may hold an earlier module's champion).
    train_and_evaluate(local, contract)
    decision = promote(local)
    assert "cannot be served" not in decision.message
    assert (local.registry.export_dir / "metadata.json").is_file()


def test_retraining_on_labelled_drifted_rows_goes_through_the_gate(
    workspace: Path, settings: Settings, contract: Contract
) -> None:
    from {{ cookiecutter.package_name }}.batches import (
        store_batch,
    )
    from {{ cookiecutter.package_name }}.errors import (
        DataValidationError,
    )
    from {{ cookiecutter.package_name }}.simulate import (
        make_batch,
    )
    from {{ cookiecutter.package_name }}.tabular import (
        read_table,
    )

    local = configured(settings)
    local = local.model_copy(
        update={
            "monitor": local.monitor.model_copy(
                update={
                    "labelled_dir": workspace / "labelled",
                    "batches_file": workspace / "batches.json",
                }
            )
        }
    )
    run_prepare(local, contract)
    publish_split(local)
    pool = len(read_table(local.data.train_path))
    train_and_evaluate(local, contract)
    promote(local)
    metadata = local.registry.export_dir / "metadata.json"
    champion = json.loads(metadata.read_text())
    production = read_table(local.data.production_path, contract)
    drifted = make_batch(production, contract, None, 3, drifted=True).frame

    # Rows that break the contract are refused and nothing is stored.
    broken = drifted.copy()
    broken[contract.features[0].name] = "not a number"
    with pytest.raises(DataValidationError, match="nothing was stored"):
        store_batch(local, contract, broken)
    assert not list((workspace / "labelled").glob("*.csv"))

    first = store_batch(local, contract, drifted)
    second = store_batch(local, contract, drifted)
    assert first != second  # a second batch in the same second never overwrites the first
    run_prepare(local, contract)
    publish_split(local)
    assert len(read_table(local.data.train_path)) == pool + 2 * len(drifted)
    try:
        challenger = train_and_evaluate(local, contract)
    except QualityGateError:
        # On data other than the sample the gate may refuse the retrained model: it stays out.
        assert json.loads(metadata.read_text())["version"] == champion["version"]
        assert not settings.data.source.startswith(SKLEARN_PREFIX), "the sample's model passes"
        return
    assert int(challenger.model_version) > int(champion["version"])
    decision = promote(local)
    # The gate scored both versions on the same held-out rows, the ones `train` wrote.
    record = json.loads(local.evaluate.promotion_file.read_text())
    comparison = record["comparison"]
    assert comparison["rows"] == len(read_table(local.data.test_path))
    assert f"on the same {comparison['rows']} held-out rows" in decision.message
    assert comparison["low"] <= comparison["gain"] <= comparison["high"]
    assert decision.promoted == (comparison["low"] > local.evaluate.promotion_margin)
    expected = challenger.model_version if decision.promoted else champion["version"]
    assert json.loads(metadata.read_text())["version"] == expected


def test_labels_the_champion_disagrees_with_are_quarantined_before_training(
    workspace: Path, settings: Settings, contract: Contract
) -> None:
    import numpy as np

    from {{ cookiecutter.package_name }}.batches import (
        QUARANTINED,
        load_batches,
    )
    from {{ cookiecutter.package_name }}.bundle import (
        load_champion,
    )
    from {{ cookiecutter.package_name }}.retrain import (
        disagreement,
        run_retrain,
    )
    from {{ cookiecutter.package_name }}.tabular import (
        read_table,
    )

    local = configured(settings)
    run_prepare(local, contract)
    publish_split(local)
    train_and_evaluate(local, contract)
    promote(local)
    champion = load_champion(local.registry.export_dir, local.task)
    target = contract.target.name
    rows = read_table(local.data.production_path, contract)
    true_share, usual = disagreement(local, contract, champion, rows)
    wrong = rows.copy()
    generator = np.random.default_rng(0)
    classes = [str(value) for value in contract.target.allowed or []]
    wrong[target] = (
        generator.choice(classes, len(rows)) if classes else generator.permutation(rows[target])
    )
    wrong_share, _ = disagreement(local, contract, champion, wrong)
    # Random labels disagree with the champion more often than true ones. (How close true
    # labels come to the held-out rate depends on the data: on a few dozen rows, a lot.)
    assert wrong_share > true_share, (wrong_share, true_share, usual)

    limit = (wrong_share + true_share) / 2
    folder = workspace / "suspect"
    monitor = local.monitor.model_copy(
        update={
            "labelled_dir": folder / "labelled",
            "quarantine_dir": folder / "quarantine",
            "batches_file": folder / "batches.json",
            "max_label_disagreement": limit,
        }
    )
    strict = local.model_copy(update={"monitor": monitor})
    version = json.loads((local.registry.export_dir / "metadata.json").read_text())["version"]
    result = run_retrain(strict, contract, wrong)  # no dvc.yaml here: the pipeline must not run
    assert not result.ran
    assert "more than monitor.max_label_disagreement" in result.message()
    assert f"the champion is unchanged (v{version})" in result.message()
    [batch] = load_batches(strict, contract)
    assert batch.state == QUARANTINED
    assert Path(batch.file).parent == folder / "quarantine"
    assert not list((folder / "labelled").glob("*.csv"))


# One `train`-like process: the project's tracking set-up, then a run with one artifact.
LOG_A_RUN = """
import sys
import mlflow
from {{ cookiecutter.package_name }}.settings import load_settings
from {{ cookiecutter.package_name }}.tracking import configure
configure(load_settings().registry)
with mlflow.start_run() as run:
    mlflow.log_text(sys.argv[1], "note.txt")
print(run.info.artifact_uri)
print(mlflow.get_experiment_by_name(load_settings().registry.experiment).artifact_location)
"""


def test_a_copied_project_keeps_its_runs_files_in_its_own_folder(tmp_path: Path) -> None:
    """MLflow records absolute artifact paths; a copy must not write into the original."""
    import subprocess
    import sys

    original, copy = tmp_path / "original", tmp_path / "copy"
    original.mkdir()
    for name in ("params.yaml", "contract.yaml"):
        shutil.copy(PROJECT_ROOT / name, original / name)
    environment = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}

    def log_a_run(folder: Path, text: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", LOG_A_RUN, text]
        return subprocess.run(
            command, cwd=folder, env=environment, capture_output=True, text=True, check=True
        )

    log_a_run(original, "first")
    shutil.copytree(original, copy)
    moved = log_a_run(copy, "second")
    artifact_uri, location = moved.stdout.split()
    assert artifact_uri.startswith((copy / "mlartifacts").as_uri()), artifact_uri
    assert location == (copy / "mlartifacts").as_uri()
    assert f"came from {original}" in moved.stderr
    notes = sorted(path.read_text() for path in (copy / "mlartifacts").rglob("note.txt"))
    assert notes == ["first", "second"]
    assert [path.read_text() for path in (original / "mlartifacts").rglob("note.txt")] == ["first"]
    again = log_a_run(copy, "third")
    assert "came from" not in again.stderr  # rewritten once
