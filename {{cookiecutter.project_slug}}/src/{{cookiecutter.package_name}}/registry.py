"""Commands `promote`, `rollback`, `challenger`, `models`: the registry, its aliases, the exports.

Aliases, not the deprecated stages: `champion` names the version that serves. Promotion exports
that version's serving bundle with its contract, a checksum and a model card, so serving needs
neither the training stack nor a tracking server.
"""

from __future__ import annotations

import getpass
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd

from . import tracking
from .bundle import (
    CARD_FILE,
    CARD_HTML_FILE,
    CONTRACT_FILE,
    EVALUATION_FILE,
    MODEL_FILE,
    ModelNotReadyError,
    install,
    load_champion,
    model_inputs,
    sha256,
    write_metadata,
)
from .card import card_html, model_card
from .contract import Contract, load_contract
from .errors import ProjectError
from .evaluate import (
    BASELINE_TAG_PREFIX,
    EVALUATION_ARTIFACTS,
    GATE_TAG,
    IMPORTANCE_FILE,
    METRIC_TAG_PREFIX,
    load_serving_bundle,
    load_serving_model,
)
from .rows import row_keys
from .settings import ANALYSIS_FILE, BEHAVIOURAL_FILE, EXPLANATION_FILE, SLICES_FILE, Settings
from .tabular import FLOAT_PARSER, read_table
from .tracking import optional_artifact, reported_failures
from .train import SERVING_ARTIFACTS, TrainResult

PROMOTED_AT = "promoted_at"
# The promotion gate's decision and figures, as JSON, on the challenger's version.
PROMOTION_TAG = "promotion"
ROLLED_BACK_AT = "rolled_back_at"
# Set on a version whose serving bundle could not be exported or verified: never promoted.
UNSERVABLE_TAG = "unservable"
# JSON list of {at, event, by}: every registry decision about the version, oldest first.
HISTORY_TAG = "history"
HISTORY_KEPT = 30
GATE = "the promotion gate (`promote`)"


@dataclass(frozen=True)
class Decision:
    """What the promotion gate did, and why, with both figures."""

    promoted: bool
    champion_version: str
    message: str


def _client(settings: Settings) -> Any:
    tracking.configure(settings.registry)
    import mlflow

    return mlflow.MlflowClient()


def _champion(client: Any, settings: Settings) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(
            settings.registry.model_name, settings.registry.champion_alias
        )
    except MlflowException:
        return None


def _test_metric(version: Any, metric: str) -> float:
    value = version.tags.get(METRIC_TAG_PREFIX + metric)
    if value is None:
        raise ProjectError(
            f"model v{version.version} has no evaluation; fix: run the evaluate stage"
        )
    return float(value)


def _tagged(version: Any, prefix: str) -> dict[str, float]:
    return {
        key.removeprefix(prefix): float(value)
        for key, value in version.tags.items()
        if key.startswith(prefix)
    }


def export_champion(
    client: Any,
    settings: Settings,
    version: Any,
    promotion: dict[str, Any] | None = None,
    *,
    as_challenger: bool = False,
) -> Path:
    """Replace the export folder with `version`'s serving bundle, metadata and model card.

    `as_challenger`: the challenger's folder and alias instead (serve.rollout serves it).
    """
    import mlflow

    registry = settings.registry
    target = registry.challenger_dir if as_challenger else registry.export_dir
    target.parent.mkdir(parents=True, exist_ok=True)
    # Staged beside the target: the final swap stays on one filesystem.
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        staging = Path(tmp) / "bundle"
        local = Path(
            mlflow.artifacts.download_artifacts(
                run_id=version.run_id, artifact_path=SERVING_ARTIFACTS
            )
        )
        shutil.copytree(local, staging)
        _copy_evaluation(version.run_id, staging)
        run = client.get_run(version.run_id)
        alias = registry.challenger_alias if as_challenger else registry.champion_alias
        metadata = _metadata(settings, version, alias, promotion, staging)
        # The exported version's own evaluation, not whichever model was evaluated last.
        behavioural = json.loads(
            Path(
                mlflow.artifacts.download_artifacts(
                    run_id=version.run_id,
                    artifact_path=f"{EVALUATION_ARTIFACTS}/{BEHAVIOURAL_FILE}",
                )
            ).read_text()
        )
        contract = load_contract(staging / CONTRACT_FILE)
        metadata["onnx"] = _export_onnx(settings, staging, contract)
        card = model_card(settings, metadata, run, behavioural, contract)
        (staging / CARD_FILE).write_text(card)
        (staging / CARD_HTML_FILE).write_text(card_html(card))
        write_metadata(staging, metadata)  # last: its checksums cover every file above
        _verified(staging, settings, version)
        install(staging, target)
    return target


def _metadata(
    settings: Settings, version: Any, alias: str, promotion: dict[str, Any] | None, staging: Path
) -> dict[str, Any]:
    """The bundle's metadata.json: what was exported, its figures and the gate's record."""
    return {
        "model_name": settings.registry.model_name,
        "version": str(version.version),
        "alias": alias,
        "run_id": version.run_id,
        "task": str(settings.task),
        "metrics": _tagged(version, METRIC_TAG_PREFIX),
        "baseline": _tagged(version, BASELINE_TAG_PREFIX),
        # The gate's record: this promotion's (not yet on the version's tags), or the tag's.
        "promotion": promotion or json.loads(version.tags.get(PROMOTION_TAG, "null")),
        # What monitoring weighs drift by: the version's permutation importance at evaluation.
        "importance": _importance(version.run_id),
        "slices": _recorded(version.run_id, SLICES_FILE),
        "analysis": _recorded(version.run_id, ANALYSIS_FILE),
        "explanation": _recorded(version.run_id, EXPLANATION_FILE),
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_sha256": sha256(staging / MODEL_FILE),
    }


def _export_onnx(settings: Settings, staging: Path, contract: Contract) -> dict[str, Any]:
    """Write the pipeline's ONNX graph into the bundle if it passes parity; the record says."""
    import joblib

    from .onnx_model import write_onnx

    pipeline = joblib.load(staging / MODEL_FILE)
    try:
        held_out = model_inputs(read_table(settings.data.test_path, contract), contract)
    except (ProjectError, OSError, KeyError) as error:
        reason = f"the held-out rows to check parity on are unreadable ({error})"
        return {"runtime": "sklearn", "reason": reason}
    tolerance = settings.registry.onnx_tolerance
    return write_onnx(staging, pipeline, contract, settings.task, held_out, tolerance)


def _verified(bundle: Path, settings: Settings, version: Any) -> None:
    """Load `bundle` as the service would; a bundle that fails is never installed."""
    try:
        champion = load_champion(bundle, settings.task)
        if champion.metadata.get("onnx", {}).get("runtime") == "onnx":
            load_champion(bundle, settings.task, "onnx")
    except ModelNotReadyError as error:
        raise ProjectError(
            f"the bundle exported for v{version.version} fails verification: {error}"
        ) from None


def _copy_evaluation(run_id: str, bundle: Path) -> None:
    """Put the run's held-out answers in the bundle, when the run recorded them."""
    path = optional_artifact(run_id, f"{EVALUATION_ARTIFACTS}/{EVALUATION_FILE}")
    if path is not None:
        shutil.copyfile(path, bundle / EVALUATION_FILE)


def _recorded(run_id: str, name: str) -> dict[str, Any]:
    """One of the run's evaluation JSON files ({} when the run was evaluated before it existed).

    slices.json is {} too when the contract named no slices.
    """
    path = optional_artifact(run_id, f"{EVALUATION_ARTIFACTS}/{name}")
    return {} if path is None else dict(json.loads(path.read_text()))


def _importance(run_id: str) -> dict[str, float]:
    """The run's held-out permutation importance per feature ({} when it was not recorded)."""
    path = optional_artifact(run_id, f"{EVALUATION_ARTIFACTS}/{IMPORTANCE_FILE}")
    if path is None:
        return {}
    table = pd.read_csv(path, float_precision=FLOAT_PARSER)
    values = pd.to_numeric(table["importance"], errors="coerce").fillna(0.0)
    return dict(zip(table["feature"].astype(str), values.astype(float).tolist(), strict=True))


def held_out_comparison(settings: Settings, champion: Any, challenger: Any) -> Any | None:
    """Both versions, as registered, scored now on the current held-out rows (paired bootstrap).

    None when the champion was trained for other columns or classes: it cannot score these rows.
    """
    from .comparison import paired_bootstrap, rows_digest, score_rows

    contract = load_contract(settings.contract_path)
    champion_model, trained_for = load_serving_bundle(champion.run_id)
    if trained_for.feature_names != contract.feature_names or trained_for.target != contract.target:
        return None
    with _serving_files_of(challenger):
        challenger_model = load_serving_model(challenger.run_id)
    test = read_table(settings.data.test_path, contract)
    task, classes = settings.task, list(contract.target.allowed or [])
    inputs = model_inputs(test, contract)
    return paired_bootstrap(
        task,
        settings.evaluate.primary_metric,
        test[contract.target.name],
        score_rows(task, champion_model, inputs, classes),
        score_rows(task, challenger_model, inputs, classes),
        classes,
        resamples=settings.evaluate.bootstrap_resamples,
        confidence=settings.evaluate.confidence,
        seed=settings.train.seed,
        rows_sha256=rows_digest(list(row_keys(test, contract.feature_names))),
    )


def _kept_out(champion: Any, challenger: Any, alias: str) -> str | None:
    """Why the challenger cannot be promoted whatever it scores; None when it may be."""
    if str(champion.version) == str(challenger.version):
        return f"v{champion.version} is already the {alias}"
    if UNSERVABLE_TAG in challenger.tags:
        reason = challenger.tags[UNSERVABLE_TAG]
        return (
            f"{alias} v{champion.version} stays: v{challenger.version} cannot be served ({reason})"
        )
    if ROLLED_BACK_AT in challenger.tags:
        return (
            f"{alias} v{champion.version} stays: v{challenger.version} was rolled back from "
            "and is never promoted again until a person re-admits it (`readmit`)"
        )
    return None


def _judge(settings: Settings, champion: Any | None, challenger: Any) -> tuple[bool, str, Any]:
    """(promote?, why, the comparison if one was made): the promotion gate's rule."""
    alias, margin = settings.registry.champion_alias, settings.evaluate.promotion_margin
    if champion is None:
        metric = settings.evaluate.primary_metric
        value = _test_metric(challenger, metric)
        return True, f"{metric} {value:.4f} on its held-out rows (no previous champion)", None
    kept_out = _kept_out(champion, challenger, alias)
    if kept_out is not None:
        return False, kept_out, None
    comparison = held_out_comparison(settings, champion, challenger)
    if comparison is None:
        return (
            True,
            (
                f"v{champion.version} was trained for another data contract and cannot score these "
                "rows; the challenger replaces it (rollback restores it)"
            ),
            None,
        )
    interval = (
        f"on the same {comparison.rows} held-out rows; gain {comparison.gain:+.4f}, "
        f"{comparison.confidence:.0%} interval [{comparison.low:+.4f}, {comparison.high:+.4f}] "
        f"({comparison.resamples} paired bootstrap resamples)"
    )
    metric = comparison.metric
    if comparison.better_by(margin):
        return (
            True,
            (
                f"{metric} {comparison.challenger:.4f} ({metric} {comparison.champion:.4f} of "
                f"v{champion.version}) {interval}, above the margin {margin}"
            ),
            comparison,
        )
    return (
        False,
        (
            f"{alias} v{champion.version} stays: {metric} {comparison.champion:.4f} vs challenger "
            f"v{challenger.version} {comparison.challenger:.4f} {interval}, not wholly above the "
            f"margin {margin}"
        ),
        comparison,
    )


def _decision_record(
    challenger: Any, replaced: Any | None, decision: Decision, comparison: Any
) -> dict[str, Any]:
    """The gate's decision as JSON: what the version's tag, the promotion file and card hold."""
    return {
        "challenger_version": str(challenger.version),
        "promoted": decision.promoted,
        "champion_version": decision.champion_version,
        # The champion the challenger replaced (null for the first), when it was promoted.
        "replaced": str(replaced.version) if decision.promoted and replaced else None,
        "message": decision.message,
        "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "decided_by": GATE,
        "comparison": None if comparison is None else comparison.to_dict(),
    }


def _record(
    client: Any, settings: Settings, challenger: Any, record: dict[str, Any], comparison: Any
) -> None:
    """The gate's decision on the challenger's version and run, and in the promotion file."""
    name = settings.registry.model_name
    client.set_model_version_tag(name, challenger.version, PROMOTION_TAG, json.dumps(record))
    outcome = (
        "promoted" if record["promoted"] else f"kept out (v{record['champion_version']} stayed)"
    )
    _log_event(client, settings, str(challenger.version), outcome, GATE)
    tracking.add_to_description(challenger.run_id, f"`promote`: {record['message']}.")
    if comparison is not None:
        for key in ("champion", "challenger", "gain", "low", "high", "rows"):
            client.log_metric(challenger.run_id, f"gate_{key}", float(getattr(comparison, key)))
    path = settings.evaluate.promotion_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")


def _decision(
    promoted: bool, why: str, challenger: Any, champion: Any | None, alias: str
) -> Decision:
    if promoted:
        return Decision(
            True, str(challenger.version), f"v{challenger.version} is the new {alias}: {why}"
        )
    assert champion is not None  # noqa: S101 - only a champion can stay  # nosec B101
    return Decision(False, str(champion.version), why)


@reported_failures("promoting")
def promote(settings: Settings, from_challenger: bool = False) -> Decision:
    """Move the champion alias to the latest model if it beats the champion (same rows, now).

    Better means: the whole confidence interval of its gain is above evaluate.promotion_margin.
    `from_challenger`: judge the challenger alias's version instead; promoted, it stops being
    the challenger (alias and bundle removed).
    """
    client = _client(settings)
    name, alias = settings.registry.model_name, settings.registry.champion_alias
    if from_challenger:
        challenger = _challenger(client, settings)
        if challenger is None:
            raise ProjectError(
                f"{name} has no {settings.registry.challenger_alias}; fix: `challenger VERSION`"
            )
    else:
        trained = TrainResult.load(settings.train.run_file)
        challenger = client.get_model_version(name, trained.model_version)
    if challenger.tags.get(GATE_TAG) != "true":
        raise ProjectError(
            f"model v{challenger.version} has not passed the quality gate; fix: run evaluate"
        )
    champion = _champion(client, settings)
    try:
        promoted, why, comparison = _judge(settings, champion, challenger)
        decision = _decision(promoted, why, challenger, champion, alias)
        record = _decision_record(challenger, champion, decision, comparison)
        if promoted:
            # Exported (and verified) before the alias moves: an unservable version never serves.
            with _serving_files_of(challenger):
                export_champion(client, settings, challenger, record)
    except UnservableError as error:
        _mark_unservable(client, settings, challenger, str(error))
    if promoted:
        client.set_registered_model_alias(name, alias, challenger.version)
        client.set_model_version_tag(
            name, challenger.version, PROMOTED_AT, datetime.now(UTC).isoformat()
        )
        current = _challenger(client, settings)
        if current is not None and str(current.version) == str(challenger.version):
            _remove_challenger(client, settings)
    _record(client, settings, challenger, record, comparison)
    problem = None if decision.promoted else _export_problem(settings, decision.champion_version)
    if problem is not None:
        serving = client.get_model_version(name, decision.champion_version)
        export_champion(client, settings, serving)
        message = f"{decision.message}; the exported bundle was re-exported ({problem})"
        return Decision(decision.promoted, decision.champion_version, message)
    return decision


class UnservableError(ProjectError):
    """A version's serving files are missing, unreadable or fail verification."""


@contextmanager
def _serving_files_of(version: Any) -> Iterator[None]:
    """Turn a failure to fetch or verify `version`'s serving files into UnservableError."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (ProjectError, MlflowException, OSError) as error:
        reason = str(error).strip().splitlines()[0][:500] if str(error).strip() else repr(error)
        raise UnservableError(reason) from None


def _mark_unservable(client: Any, settings: Settings, version: Any, reason: str) -> NoReturn:
    """Tag the version so no later `promote` considers it, and stop with one line.

    Not when the tracking server is down: a version is not condemned for a network failure.
    """
    tracking.check_reachable(tracking.tracking_uri(settings.registry))
    name = settings.registry.model_name
    client.set_model_version_tag(name, version.version, UNSERVABLE_TAG, reason)
    raise ProjectError(
        f"v{version.version} cannot be served ({reason}); it is tagged {UNSERVABLE_TAG} and "
        "never promoted, and the champion is unchanged; fix: retrain (`dvc repro --force`)"
    )


def _export_problem(settings: Settings, version: str) -> str | None:
    """Why the exported bundle is not `version`'s, verified; None when it is.

    Checked whenever the champion stays, so a pipeline run repairs a damaged bundle instead of
    recording it in dvc.lock.
    """
    try:
        exported = load_champion(settings.registry.export_dir, settings.task)
    except ModelNotReadyError as error:
        return str(error)
    if exported.version != version:
        return f"it held v{exported.version}, not the champion v{version}"
    return None


@reported_failures("exporting")
def reexport(settings: Settings) -> Decision:
    """Write the champion's serving bundle again from the registry, and verify it."""
    client = _client(settings)
    champion = _champion(client, settings)
    if champion is None:
        raise ProjectError(
            f"{settings.registry.model_name} has no {settings.registry.champion_alias} to "
            "export; fix: run the pipeline (`dvc repro`)"
        )
    target = export_champion(client, settings, champion)
    return Decision(
        False,
        str(champion.version),
        f"v{champion.version} ({settings.registry.champion_alias}) exported again to {target} "
        "and verified (every file's SHA-256, the model loads against its contract)",
    )


@reported_failures("rolling back")
def rollback(settings: Settings) -> Decision:
    """Move the champion alias back to the version that was champion before the current one."""
    client = _client(settings)
    name, alias = settings.registry.model_name, settings.registry.champion_alias
    champion = _champion(client, settings)
    if champion is None:
        raise ProjectError(f"{name} has no {alias} to roll back from")
    current_since = champion.tags.get(PROMOTED_AT, "")
    earlier = [
        version
        for version in client.search_model_versions(f"name='{name}'")
        if version.tags.get(PROMOTED_AT, "")
        and version.tags[PROMOTED_AT] < current_since
        and str(version.version) != str(champion.version)
        and ROLLED_BACK_AT not in version.tags  # never return to a version rolled back from
    ]
    if not earlier:
        raise ProjectError(
            f"v{champion.version} is the first {alias}; there is nothing to roll back to"
        )
    previous = max(earlier, key=lambda version: version.tags[PROMOTED_AT])
    client.set_registered_model_alias(name, alias, previous.version)
    client.set_model_version_tag(
        name, champion.version, ROLLED_BACK_AT, datetime.now(UTC).isoformat()
    )
    person = getpass.getuser()
    _log_event(client, settings, str(champion.version), "rolled back from", person)
    _log_event(client, settings, str(previous.version), "champion again (rollback)", person)
    export_champion(client, settings, client.get_model_version(name, previous.version))
    return Decision(
        True,
        str(previous.version),
        f"{alias} rolled back from v{champion.version} to v{previous.version}",
    )


@reported_failures("listing models")
def list_models(settings: Settings) -> list[dict[str, str]]:
    """Every registered version with its aliases, gate verdict and primary metric."""
    from mlflow.exceptions import MlflowException

    client = _client(settings)
    metric = settings.evaluate.primary_metric
    name = settings.registry.model_name
    try:
        # Version search results do not carry aliases; the registered model does.
        aliases: dict[str, str] = dict(client.get_registered_model(name).aliases)
    except MlflowException:
        return []
    rows = []
    for version in sorted(
        client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version)
    ):
        rows.append(
            {
                "version": str(version.version),
                "aliases": ",".join(
                    a for a, v in sorted(aliases.items()) if str(v) == str(version.version)
                )
                or "-",
                metric: version.tags.get(METRIC_TAG_PREFIX + metric, "-"),
                "quality_gate": {"true": "passed", "false": "failed"}.get(
                    version.tags.get(GATE_TAG, ""), "-"
                ),
                "history": _history(version.tags),
            }
        )
    return rows


def _log_event(client: Any, settings: Settings, version: str, event: str, by: str) -> None:
    """Append a decision to the version's history tag (the newest HISTORY_KEPT are kept)."""
    name = settings.registry.model_name
    tags = client.get_model_version(name, version).tags
    events = [*_events(tags), {"at": datetime.now(UTC).isoformat(), "event": event, "by": by}]
    client.set_model_version_tag(name, version, HISTORY_TAG, json.dumps(events[-HISTORY_KEPT:]))


def _events(tags: dict[str, str]) -> list[dict[str, str]]:
    try:
        events = json.loads(tags.get(HISTORY_TAG, "[]"))
    except ValueError:
        return []
    return events if isinstance(events, list) else []


def _history(tags: dict[str, str]) -> str:
    """What was decided about a version, oldest first, and who or what decided it."""
    steps = ["missed the quality gate"] if tags.get(GATE_TAG) == "false" else []
    steps += [
        f"{event['event']} {str(event['at'])[:19]} by {event['by']}" for event in _events(tags)
    ]
    return "; ".join(steps) or "-"


def _challenger(client: Any, settings: Settings) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(
            settings.registry.model_name, settings.registry.challenger_alias
        )
    except MlflowException:
        return None


def _remove_challenger(client: Any, settings: Settings) -> None:
    """No challenger: the alias deleted, its bundle removed (restarted: the champion answers)."""
    registry = settings.registry
    if _challenger(client, settings) is not None:
        client.delete_registered_model_alias(registry.model_name, registry.challenger_alias)
    shutil.rmtree(registry.challenger_dir, ignore_errors=True)


@reported_failures("setting the challenger")
def set_challenger(settings: Settings, version: int | None) -> str:
    """Make `version` the challenger and export its bundle; None: no challenger any more."""
    from mlflow.exceptions import MlflowException

    client = _client(settings)
    registry = settings.registry
    name, alias = registry.model_name, registry.challenger_alias
    if version is None:
        _remove_challenger(client, settings)
        return (
            f"no {alias} now: {registry.challenger_dir} removed; a running rollout sends all "
            f"traffic to the champion within {settings.serve.rollout_check_seconds:g} s"
        )
    try:
        candidate = client.get_model_version(name, str(version))
    except MlflowException:
        raise ProjectError(f"{name} has no version {version}; fix: see `models`") from None
    if candidate.tags.get(GATE_TAG) != "true":
        raise ProjectError(f"v{version} has not passed the quality gate; fix: pick another")
    champion = _champion(client, settings)
    kept_out = None if champion is None else _kept_out(champion, candidate, registry.champion_alias)
    if kept_out is not None:
        raise ProjectError(f"v{version} cannot be the {alias}: {kept_out}")
    try:
        with _serving_files_of(candidate):
            export_champion(client, settings, candidate, as_challenger=True)
    except UnservableError as error:
        _mark_unservable(client, settings, candidate, str(error))
    client.set_registered_model_alias(name, alias, candidate.version)
    _log_event(client, settings, str(version), alias, getpass.getuser())
    return (
        f"v{version} is the {alias}, exported to {registry.challenger_dir}; serve it beside the "
        "champion with serve.rollout (shadow, canary or ab), then `promote --challenger`"
    )


@reported_failures("re-admitting")
def readmit(settings: Settings, version: int) -> str:
    """Let a version rolled back from be promoted again (it does not become champion now)."""
    from mlflow.exceptions import MlflowException

    client = _client(settings)
    name = settings.registry.model_name
    try:
        found = client.get_model_version(name, str(version))
    except MlflowException:
        raise ProjectError(f"{name} has no version {version}; fix: see `models`") from None
    if ROLLED_BACK_AT not in found.tags:
        return f"v{version} was never rolled back from; nothing to re-admit"
    client.delete_model_version_tag(name, str(version), ROLLED_BACK_AT)
    _log_event(client, settings, str(version), "re-admitted", getpass.getuser())
    return (
        f"v{version} re-admitted: `promote` may choose it again when it is the latest model and "
        "beats the champion"
    )
