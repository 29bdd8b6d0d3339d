"""The pipeline re-runs training when the tracking store changes (DVC cannot see the variable)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.package_name }}.pipeline import (
    STORE_FILE,
    record_store,
)
from {{ cookiecutter.package_name }}.settings import (
    Settings,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder holding the shipped store file, with no tracking server set."""
    shutil.copy(PROJECT_ROOT / STORE_FILE, tmp_path / STORE_FILE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def test_the_shipped_file_names_the_configured_store(folder: Path, settings: Settings) -> None:
    shipped = (folder / STORE_FILE).read_text()
    assert not record_store(settings), "fix: run `make pipeline` (it records the store)"
    assert (folder / STORE_FILE).read_text() == shipped


def test_another_store_changes_the_param_and_keeps_its_secrets_off_disk(
    folder: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = yaml.safe_load((folder / STORE_FILE).read_text())["store"]
    uri = "http://ops:s3cret@tracking.example:5000"  # pragma: allowlist secret (a test value)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert record_store(settings)
    text = (folder / STORE_FILE).read_text()
    assert "s3cret" not in text
    assert "tracking.example" not in text
    assert yaml.safe_load(text)["store"] != before
    assert not record_store(settings)  # the same store again: nothing to re-run
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert record_store(settings)
    assert yaml.safe_load((folder / STORE_FILE).read_text())["store"] == before


def test_the_train_stage_depends_on_the_store() -> None:
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    assert {str(STORE_FILE): ["store"]} in stages["train"]["params"]
    assert "registry.tracking_uri" in stages["train"]["params"]
