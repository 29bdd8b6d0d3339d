"""MLflow set-up: where runs go, checked before anything is logged or registered."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ProjectError
from .settings import RegistrySettings

ARTIFACTS_DIR = Path("mlartifacts")
REACHABILITY_TIMEOUT_S = 5


def tracking_uri(registry: RegistrySettings) -> str:
    """MLFLOW_TRACKING_URI if set (a shared server), else the project's local store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or registry.tracking_uri


def check_reachable(uri: str) -> None:
    """Fail fast, before a run starts, so nothing is half-logged or half-registered."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=REACHABILITY_TIMEOUT_S):  # noqa: S310 - the user's own tracking server  # nosec B310
            return
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise ProjectError(
            f"MLflow tracking server {uri} is unreachable ({reason}); fix: start it, or unset "
            "MLFLOW_TRACKING_URI to use the project's local store"
        ) from None


@contextmanager
def reported_failures(action: str) -> Iterator[None]:
    """Turn an MLflow failure (say, the server dying mid-run) into a one-line error."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ProjectError(
            f"MLflow failed while {action}: {reason}; fix: check the tracking store and rerun"
        ) from None


def _limit_http_retries(registry: RegistrySettings) -> None:
    # MLflow reads these at each request; a user's own MLFLOW_HTTP_REQUEST_* setting wins.
    limits = {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": registry.http_timeout_seconds,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": registry.http_max_retries,
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": registry.http_backoff_factor,
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": 0,
    }
    for name, value in limits.items():
        os.environ.setdefault(name, str(value))


def configure(registry: RegistrySettings) -> str:
    """Point MLflow at the tracking store and experiment; return the tracking URI."""
    uri = tracking_uri(registry)
    check_reachable(uri)
    _limit_http_retries(registry)
    import mlflow

    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(registry.experiment) is None:
        # Local stores keep artifacts beside the database; a server decides for itself.
        location = None if uri.startswith("http") else ARTIFACTS_DIR.resolve().as_uri()
        mlflow.create_experiment(registry.experiment, artifact_location=location)
    mlflow.set_experiment(registry.experiment)
    return uri


def optional_artifact(run_id: str, artifact_path: str) -> Path | None:
    """A run's artifact downloaded to a local path, or None when the run did not record it."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path))
    except (MlflowException, OSError):
        return None
