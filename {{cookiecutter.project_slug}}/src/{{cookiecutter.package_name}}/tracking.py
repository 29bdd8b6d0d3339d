"""MLflow set-up: where runs go, checked before anything is logged or registered."""

from __future__ import annotations

import os
import sqlite3
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ProjectError

if TYPE_CHECKING:  # the CLI imports this module at start: settings (pydantic) loads later
    from .settings import RegistrySettings

ARTIFACTS_DIR = Path("mlartifacts")
# Which project folder a run belongs to: its abandoned runs are closed by its next `train`.
PROJECT_TAG = "project_dir"
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


# The UI opens an experiment of this kind on its runs table (untyped ones open on GenAI traces).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def quiet_mlflow() -> None:
    """MLflow's own INFO chatter and download bars off, before MLflow is first imported.

    Warnings still show. Each stage prints what it did in one line; MLflow's progress bars
    redrew for downloads of a millisecond. A user's own setting of either variable wins.
    """
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


# What the UI shows as a run's description (Markdown); each stage adds its paragraph.
DESCRIPTION_TAG = "mlflow.note.content"
# A logged model's environment, pinned to what trained it. Declared, not inferred: MLflow's
# inference spawns a process (~10 s), warns when uv is not on PATH, and listed test tools.
MODEL_REQUIREMENTS = ("mlflow", "scikit-learn", "skops", "numpy", "pandas", "scipy")


def model_requirements() -> list[str]:
    """`name==version` of each distribution a logged model needs, as installed here."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in MODEL_REQUIREMENTS]


def add_to_description(run_id: str, paragraph: str) -> None:
    """Append a stage's paragraph to the run's description, which `train` starts."""
    import mlflow

    client = mlflow.MlflowClient()
    current = client.get_run(run_id).data.tags.get(DESCRIPTION_TAG, "")
    client.set_tag(run_id, DESCRIPTION_TAG, f"{current}\n\n{paragraph}".strip())


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


def relocate_local_store(uri: str, experiment: str) -> Path | None:
    """Make a copied or moved project's local store point at its own folder; the old folder.

    MLflow records absolute artifact paths: without this, a copy of the project would write its
    runs' files into the original's `mlartifacts/` (and read the original's models). Every path
    under the old project folder, in every table, is rewritten to this folder. Only the
    project's own SQLite store (a relative `sqlite:///` path) is touched; None when it is here.
    """
    database = uri.removeprefix("sqlite:///")
    if database == uri or Path(database).is_absolute() or not Path(database).is_file():
        return None
    with closing(sqlite3.connect(database)) as connection, connection:
        try:
            found = connection.execute(
                "SELECT artifact_location FROM experiments WHERE name = ?", (experiment,)
            ).fetchone()
        except sqlite3.OperationalError:  # not an MLflow store (yet)
            return None
        if found is None or not str(found[0]).startswith("file://"):
            return None
        old = Path(urllib.parse.urlparse(str(found[0])).path).parent
        here = Path(project_id())
        if old == here:
            return None
        _replace_everywhere(connection, f"{old}/", f"{here}/")
    return old


def _replace_everywhere(connection: sqlite3.Connection, old: str, new: str) -> None:
    """Rewrite `old` to `new` in every text column of every table (names from the schema)."""
    tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    for (table,) in tables:
        for column in connection.execute(f"PRAGMA table_info('{table}')").fetchall():
            if "CHAR" not in str(column[2]).upper() and str(column[2]).upper() != "TEXT":
                continue
            name = column[1]
            # Names come from the store's own schema, values are bound: nothing from a user.
            assignment = f'"{name}" = REPLACE("{name}", ?, ?) WHERE "{name}" LIKE ?'
            update = f'UPDATE "{table}" SET {assignment}'  # noqa: S608  # nosec B608
            connection.execute(update, (old, new, f"%{old}%"))


def configure(registry: RegistrySettings) -> str:
    """Point MLflow at the tracking store and experiment; return the tracking URI."""
    quiet_mlflow()  # before MLflow's first import in this process, which reads it
    uri = tracking_uri(registry)
    check_reachable(uri)
    moved_from = relocate_local_store(uri, registry.experiment)
    if moved_from is not None:
        print(
            f"note: {uri.removeprefix('sqlite:///')} came from {moved_from}: its artifact paths "
            "now point into this folder",
            file=sys.stderr,
        )
    _limit_http_retries(registry)
    import mlflow

    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(registry.experiment) is None:
        # Local stores keep artifacts beside the database; a server decides for itself.
        location = None if uri.startswith("http") else ARTIFACTS_DIR.resolve().as_uri()
        mlflow.create_experiment(
            registry.experiment, artifact_location=location, tags=EXPERIMENT_KIND
        )
    experiment = mlflow.set_experiment(registry.experiment)
    if not EXPERIMENT_KIND.items() <= experiment.tags.items():  # made before the tag existed
        for key, value in EXPERIMENT_KIND.items():
            mlflow.set_experiment_tag(key, value)
    return uri


def optional_artifact(run_id: str, artifact_path: str) -> Path | None:
    """A run's artifact downloaded to a local path, or None when the run did not record it."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path))
    except (MlflowException, OSError):
        return None


def project_id() -> str:
    """The project's folder: runs tagged with it belong to it."""
    return str(Path.cwd().resolve())


def close_abandoned_runs(registry: RegistrySettings) -> list[str]:
    """Mark FAILED this project's runs still RUNNING (a killed stage, a server lost mid-run).

    DVC runs one `train` per project at a time, so a RUNNING run of this folder when another
    starts was abandoned. Returns their ids.
    """
    import mlflow

    experiment = mlflow.get_experiment_by_name(registry.experiment)
    if experiment is None:
        return []
    client = mlflow.MlflowClient()
    project = project_id().replace("'", "\\'")
    abandoned = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.{PROJECT_TAG} = '{project}'",
    )
    for run in abandoned:
        client.set_terminated(run.info.run_id, status="FAILED")
    return [run.info.run_id for run in abandoned]


def runs_page(base_url: str, experiment_id: str) -> str:
    """The UI's page listing the experiment's runs.

    In the model-training view: the UI otherwise starts in its GenAI view (traces, an overview).
    """
    page = f"/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    return base_url.rstrip("/") + page


def open_ui(registry: RegistrySettings, host: str, port: int) -> None:
    """Print the runs page; for a local store, then run MLflow's UI on it in this process."""
    uri = configure(registry)  # the experiment exists and is typed for the runs view
    import mlflow

    experiment = mlflow.get_experiment_by_name(registry.experiment)
    assert experiment is not None  # noqa: S101 - configure made it  # nosec B101
    if uri.startswith("http"):
        print(f"the runs: {runs_page(uri, experiment.experiment_id)}")
        return
    page = runs_page(f"http://{host}:{port}", experiment.experiment_id)
    print(f"the runs: {page}   (the UI runs until Ctrl+C)", flush=True)
    command = ["mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    command += ["--workers", "1"]  # one person's browser: MLflow's default 4 take ~1 GB
    # MLflow's own CLI from this environment; exec: Ctrl+C and signals reach the server itself.
    os.execv(sys.executable, [sys.executable, "-m", *command])  # noqa: S606  # nosec B606
