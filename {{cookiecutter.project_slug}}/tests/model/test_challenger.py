"""The challenger alias in a throwaway MLflow store: exported beside the champion, served by a
rollout, and moved to champion only through the promotion gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.api.main import create_app
from {{ cookiecutter.package_name }}.contract import Contract
from {{ cookiecutter.package_name }}.errors import ProjectError
from {{ cookiecutter.package_name }}.prepare import SKLEARN_PREFIX, publish_split, run_prepare
from {{ cookiecutter.package_name }}.registry import list_models, promote, set_challenger
from {{ cookiecutter.package_name }}.settings import Settings

from .test_lifecycle import PROJECT_ROOT, WEAK_MODEL, configured, train_and_evaluate


def aliases(settings: Settings) -> dict[str, str]:
    return {row["version"]: row["aliases"] for row in list_models(settings)}


def canary_answer(settings: Settings, sample: pd.DataFrame, contract: Contract) -> dict[str, str]:
    """One /predict answer from a service whose canary sends every key to the challenger."""
    serve = settings.serve.model_copy(
        update={"rollout": "canary", "challenger_share": 1.0, "prediction_log_dir": Path("log")}
    )
    record = json.loads(sample[contract.feature_names].head(1).to_json(orient="records"))[0]
    with TestClient(create_app(settings.model_copy(update={"serve": serve}))) as client:
        body: dict[str, str] = client.post("/predict", json=record).json()
    return body


def test_a_challenger_serves_beside_the_champion_until_the_gate_promotes_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    contract: Contract,
    sample: pd.DataFrame,
) -> None:
    if not settings.data.source.startswith(SKLEARN_PREFIX):
        pytest.skip("the weak-then-better sequence is tuned to the bundled sample")
    shutil.copy(PROJECT_ROOT / "contract.yaml", tmp_path / "contract.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # A store of its own by absolute path: MLflow caches a store per URI, and test_lifecycle's
    # `sqlite:///mlflow.db` must not be this folder's.
    store = {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    lenient, weak = (
        made.model_copy(update={"registry": made.registry.model_copy(update=store)})
        for made in (configured(settings), configured(settings, **WEAK_MODEL))
    )
    run_prepare(lenient, contract)
    publish_split(lenient)
    first = train_and_evaluate(weak, contract)
    assert promote(weak).promoted
    better = train_and_evaluate(lenient, contract)
    version = int(better.model_version)

    with pytest.raises(ProjectError, match=r"has no version 99; fix: see `models`"):
        set_challenger(lenient, 99)
    with pytest.raises(ProjectError, match=rf"v{first.model_version} is already the champion"):
        set_challenger(lenient, int(first.model_version))
    said = set_challenger(lenient, version)
    assert f"v{version} is the challenger" in said
    exported = json.loads((lenient.registry.challenger_dir / "metadata.json").read_text())
    assert (exported["version"], exported["alias"]) == (str(version), "challenger")
    assert aliases(lenient)[str(version)] == "challenger"
    # The champion's bundle is untouched; a canary serves the registry's challenger beside it.
    champion = json.loads((lenient.registry.export_dir / "metadata.json").read_text())
    assert champion["version"] == first.model_version
    answer = canary_answer(lenient, sample, contract)
    assert (answer["model_version"], answer["model_role"]) == (str(version), "challenger")

    # Through the gate (same held-out rows, paired interval): promoted, it is no challenger.
    decision = promote(lenient, from_challenger=True)
    assert decision.promoted, decision.message
    assert aliases(lenient)[str(version)] == "champion"
    assert not lenient.registry.challenger_dir.exists()
    with pytest.raises(ProjectError, match=r"has no challenger; fix: `challenger VERSION`"):
        promote(lenient, from_challenger=True)

    # Clearing (the canary's rollback): the alias and the bundle go; the champion stays.
    set_challenger(lenient, int(first.model_version))
    assert set_challenger(lenient, None).startswith("no challenger now")
    assert "challenger" not in aliases(lenient).values()
    assert not lenient.registry.challenger_dir.exists()
    assert aliases(lenient)[str(version)] == "champion"
