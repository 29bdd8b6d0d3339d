"""Start-up with a bad bundle: the service stays up, reports not ready, and says why."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.api.main import (
    create_app,
)
from {{ cookiecutter.package_name }}.contract import (
    Contract,
    save_contract,
)
from {{ cookiecutter.package_name }}.settings import (
    ENV_PREFIX,
    Settings,
)

ServiceSettings = Callable[..., Settings]  # the conftest fixture: serve overrides -> Settings


PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _remove_model(bundle: Path, contract: Contract) -> None:
    (bundle / "model.joblib").unlink()


def _corrupt_model(bundle: Path, contract: Contract) -> None:
    model = bundle / "model.joblib"
    model.write_bytes(model.read_bytes()[:-10] + b"0123456789")


def _unloadable_model(bundle: Path, contract: Contract) -> None:
    """The pickle and the ONNX graph replaced by bytes neither loader takes, checksums updated."""
    import hashlib

    garbage = b"this is not a pickle, nor an ONNX graph"
    metadata = json.loads((bundle / "metadata.json").read_text())
    for name in ("model.joblib", "model.onnx"):
        if (bundle / name).exists():
            (bundle / name).write_bytes(garbage)
            metadata["files"][name] = hashlib.sha256(garbage).hexdigest()
    (bundle / "metadata.json").write_text(json.dumps(metadata))


def _edited_contract(bundle: Path, contract: Contract) -> None:
    kept = contract.features[1:]
    slices = [entry for entry in contract.slices if entry.column in {c.name for c in kept}]
    fewer = contract.model_copy(update={"features": kept, "slices": slices})
    save_contract(fewer, bundle / "contract.yaml", overwrite=True)


def _mismatched_contract(bundle: Path, contract: Contract) -> None:
    """A bundle made by hand, checksums and all, whose contract does not fit its model."""
    import hashlib

    _edited_contract(bundle, contract)
    metadata = json.loads((bundle / "metadata.json").read_text())
    edited = (bundle / "contract.yaml").read_bytes()
    metadata["files"]["contract.yaml"] = hashlib.sha256(edited).hexdigest()
    (bundle / "metadata.json").write_text(json.dumps(metadata))


def _narrowed_contract(bundle: Path, contract: Contract) -> None:
    """Same columns, other ranges: the service would refuse real requests while looking ready."""
    numeric = next(column for column in contract.features if column.is_numeric)
    narrowed = numeric.model_copy(update={"min": 0.0, "max": 0.0})
    features = [narrowed if column is numeric else column for column in contract.features]
    save_contract(
        contract.model_copy(update={"features": features}), bundle / "contract.yaml", overwrite=True
    )


def _edited_card(bundle: Path, contract: Contract) -> None:
    card = bundle / "model_card.md"
    card.write_text(card.read_text() + "\nEdited by hand.\n")


def _no_checksums(bundle: Path, contract: Contract) -> None:
    metadata = json.loads((bundle / "metadata.json").read_text())
    del metadata["files"]
    (bundle / "metadata.json").write_text(json.dumps(metadata))


def _garbled_metadata(bundle: Path, contract: Contract) -> None:
    (bundle / "metadata.json").write_text("{not json")


BREAKAGES: dict[str, tuple[Callable[[Path, Contract], None], str]] = {
    "missing model": (_remove_model, "model.joblib not found"),
    "corrupt model": (_corrupt_model, "does not match"),
    "unloadable model": (_unloadable_model, "could not be loaded"),
    "edited contract": (_edited_contract, "contract.yaml SHA-256"),
    "contract mismatch": (_mismatched_contract, "but its contract declares"),
    "narrowed contract": (_narrowed_contract, "contract.yaml SHA-256"),
    "edited model card": (_edited_card, "model_card.md SHA-256"),
    "no checksums": (_no_checksums, "lists no checksums"),
    "garbled metadata": (_garbled_metadata, "metadata.json is unreadable"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_a_bad_bundle_leaves_the_service_up_but_not_ready(
    breakage: str,
    service_settings: ServiceSettings,
    contract: Contract,
    champion_bundle: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    breaks, reason = BREAKAGES[breakage]
    breaks(champion_bundle, contract)
    with caplog.at_level(logging.ERROR):
        app = create_app(service_settings())
    assert any(reason in record.getMessage() for record in caplog.records), caplog.text
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert reason in ready.json()["reason"]
        predict = client.post("/predict", json={})
        assert predict.status_code == 503
        assert reason in predict.json()["detail"]
        assert "model_ready 0.0" in client.get("/metrics").text
        assert client.get("/health").headers["x-model-version"] == "none"


def test_the_service_imports_no_training_or_monitoring_stack(champion_bundle: Path) -> None:
    """Serving needs scikit-learn, not MLflow, Great Expectations, Evidently, DVC or SHAP."""
    program = (
        "import sys\n"
        "from {{ cookiecutter.package_name }}.api.main import create_app\n"
        "app = create_app()\n"
        "assert app.state.service.champion is not None, app.state.service.not_ready_reason\n"
        "heavy = ['mlflow', 'great_expectations', 'evidently', 'dvc', 'matplotlib', 'shap']\n"
        "print(sorted(name for name in heavy if name in sys.modules))\n"
    )
    environment = {
        f"{ENV_PREFIX}REGISTRY__EXPORT_DIR": str(champion_bundle),
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert result.stdout.strip() == "[]"
