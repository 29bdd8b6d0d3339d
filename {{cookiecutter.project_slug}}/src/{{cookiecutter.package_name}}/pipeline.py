"""The DVC pipeline as the project's commands run it (`pipeline`, `retrain`).

DVC sees files and params, not environment variables: pointed at another MLflow tracking store
(`MLFLOW_TRACKING_URI`), `dvc repro` alone would skip every stage, and the new store would hold
no run and no champion. So the store's identity (a hash of its URI: no credentials on disk) is
written to STORE_FILE, a params file of the train stage, before `dvc repro` runs: a new store
re-runs train, evaluate and promote there, the same store re-runs nothing.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from .files import write_whole
from .processes import run_as_group
from .settings import Settings
from .tracking import tracking_uri

STORE_FILE = Path("tracking_store.yaml")
_HEADER = (
    "# Which MLflow tracking store the pipeline's runs go to (a hash of its URI), written by\n"
    "# `pipeline` and `retrain` before `dvc repro`: a new store re-runs train and promote.\n"
)


def store_id(uri: str) -> str:
    """A short, stable identity for a tracking URI (it may hold credentials: hashed)."""
    return hashlib.sha256(uri.encode()).hexdigest()[:16]


def record_store(settings: Settings) -> bool:
    """Write the current store's identity to STORE_FILE if it changed; whether it did."""
    text = f"{_HEADER}store: {store_id(tracking_uri(settings.registry))}\n"
    try:
        if STORE_FILE.read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    write_whole(STORE_FILE, text)
    return True


def run_pipeline(settings: Settings) -> int:
    """`dvc repro` in its own process group (stopped with this process); its exit code."""
    record_store(settings)
    # dvc.yaml's stages call this project's console script: put its environment first on
    # PATH, so the pipeline runs when the CLI is run from .venv/bin without activation.
    scripts = Path(sys.executable).parent
    search_path = os.pathsep.join([str(scripts), os.environ.get("PATH", "")])
    environment = {**os.environ, "PATH": search_path}
    dvc = scripts / "dvc"
    command = [str(dvc) if dvc.exists() else "dvc", "repro"]
    return run_as_group(command, environment, "the `dvc repro` it started")
