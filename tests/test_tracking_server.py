"""The training half against a real MLflow tracking server backed by PostgreSQL."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import bake, free_port, git, run, run_unchecked, uv_executable

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tracking-server")]
STARTUP_TIMEOUT_S = 120


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to its own user when we are root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def wait_until_up(url: str, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            pytest.fail(f"{what} exited with {process.returncode} while starting:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"{what} did not answer {url} within {STARTUP_TIMEOUT_S} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A private PostgreSQL cluster on a free port; yields its SQLAlchemy URI."""
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not binaries:
        pytest.fail("PostgreSQL is not installed: `apt-get install postgresql` (.ci/run does)")
    bin_dir = Path(binaries[-1])
    # Not under pytest's temporary root: that is private to root, and postgres runs as itself.
    data = Path(tempfile.mkdtemp(prefix="mlflow-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
    subprocess.run(
        as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "mlflow", "--auth=trust"]),
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    server = subprocess.Popen(
        as_postgres(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-h",
                "127.0.0.1",
                "-k",
                str(data),
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while (
            subprocess.run(
                [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                capture_output=True,
                check=False,
            ).returncode
            != 0
        ):
            if time.monotonic() > deadline or server.poll() is not None:
                pytest.fail("PostgreSQL did not start")
            time.sleep(0.3)
        subprocess.run(
            [
                str(bin_dir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "mlflow",
                "mlflow",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield f"postgresql+psycopg://mlflow@127.0.0.1:{port}/mlflow"
    finally:
        stop(server)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    baked = bake(tmp_path_factory.mktemp("server-project"))
    run(["make", "setup", f"UV={uv_executable()}"], baked)
    git(baked, "add", "-A")
    git(baked, "commit", "-qm", "Baked from the template")
    return baked


def start_server(
    project: Path, backend: str, artifacts: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """`mlflow server` from the project's own environment, serving artifacts; and its URL."""
    port = free_port()
    log = artifacts.parent / f"mlflow-server-{port}.log"
    server = subprocess.Popen(
        [
            str(project / ".venv" / "bin" / "mlflow"),
            "server",
            "--backend-store-uri",
            backend,
            "--artifacts-destination",
            artifacts.as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=project,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the server forks its workers
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/health", server, "mlflow server", log)
    except BaseException:
        stop(server)
        raise
    return server, url


@pytest.fixture(scope="module")
def tracking_server(
    project: Path, postgres: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`mlflow server` on PostgreSQL, for the module."""
    server, url = start_server(project, postgres, tmp_path_factory.mktemp("artifacts"))
    try:
        yield url
    finally:
        stop(server)


def test_pipeline_registers_a_champion_on_the_server(
    project: Path, tracking_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    cold = run(["make", "pipeline", f"UV={uv_executable()}"], project)
    assert "v1 is the new champion" in cold
    assert not (project / "mlflow.db").exists()  # nothing went to the local store
    metadata = json.loads((project / "models/champion/metadata.json").read_text())
    assert metadata["version"] == "1"
    # The server's registry holds the champion alias, read through its REST API.
    query = (
        f"{tracking_server}/api/2.0/mlflow/registered-models/alias"
        "?name=my-ml-service&alias=champion"
    )
    with urllib.request.urlopen(query, timeout=10) as response:
        assert json.load(response)["model_version"]["version"] == "1"

    # A retrained model with the same data and params is registered, but is not better.
    retrain = run([uv_executable(), "run", "--locked", "dvc", "repro", "--force"], project)
    assert "champion v1 stays" in retrain
    assert "challenger v2" in retrain


def test_switching_the_tracking_store_reruns_training_there(
    project: Path, tracking_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DVC cannot see MLFLOW_TRACKING_URI: `make pipeline` records the store, so the local store
    gets its own run and champion after the server had them, and the same store re-runs nothing."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    pipeline = ["make", "pipeline", f"UV={uv_executable()}"]
    assert "Running stage" not in run(pipeline, project)  # the server's pipeline is current
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    local = run(pipeline, project)
    for stage in ("train", "evaluate", "promote"):
        assert f"Running stage '{stage}'" in local, local
    assert "v1 is the new champion" in local  # the local store's first version
    assert (project / "mlflow.db").is_file()
    assert "Running stage" not in run(pipeline, project)
    listing = run([uv_executable(), "run", "--locked", "my_ml_service", "models"], project)
    assert re.search(r"^1\s+champion\s", listing, re.MULTILINE), listing


def test_unreachable_server_is_a_clear_error(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    result = run_unchecked([uv_executable(), "run", "--locked", "my_ml_service", "train"], project)
    assert result.returncode == 2
    assert "is unreachable" in result.stderr
    assert "Traceback" not in result.stderr


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        answer: dict[str, object] = json.load(response)
        return answer


def _champion(alias: str) -> object:
    """The champion alias's version on the server, or None when none is set yet."""
    try:
        return _get(alias)["model_version"]
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def _wait_for_a_running_run(url: str, train: subprocess.Popen[str]) -> None:
    """Until the server holds a RUNNING run of the project's experiment (train is mid-run)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and train.poll() is None:
        try:
            found = _get(
                f"{url}/api/2.0/mlflow/experiments/get-by-name?experiment_name=my-ml-service"
            )
            experiment = found["experiment"]
            assert isinstance(experiment, dict)
            request = urllib.request.Request(
                f"{url}/api/2.0/mlflow/runs/search",
                json.dumps({"experiment_ids": [experiment["experiment_id"]]}).encode(),
                {"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                runs = json.load(response).get("runs", [])
            if any(run["info"]["status"] == "RUNNING" for run in runs):
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail("train never had a run in progress on the server")


def test_a_server_lost_mid_train_fails_the_stage_fast_and_keeps_the_champion(
    project: Path, postgres: str, tracking_server: str, tmp_path: Path
) -> None:
    alias = (
        f"{tracking_server}/api/2.0/mlflow/registered-models/alias"
        "?name=my-ml-service&alias=champion"
    )
    champion = _champion(alias)
    if not (project / "data/prepared/train.csv").exists():
        run([uv_executable(), "run", "--locked", "dvc", "repro", "validate"], project)
    # A second server on the same store: it stops answering (SIGSTOP) while train logs to it.
    server, url = start_server(project, postgres, tmp_path / "artifacts")
    env = {**os.environ, "MLFLOW_TRACKING_URI": url}
    env.pop("VIRTUAL_ENV", None)
    train = subprocess.Popen(
        [str(project / ".venv/bin/my_ml_service"), "train"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_a_running_run(url, train)
        os.killpg(server.pid, signal.SIGSTOP)  # the server and its workers stop answering
        lost = time.monotonic()
        _, stderr = train.communicate(timeout=120)
        failed_after = time.monotonic() - lost
    finally:
        train.kill()
        os.killpg(server.pid, signal.SIGCONT)
        stop(server)
    assert train.returncode == 2, stderr
    assert failed_after < 60, f"train failed {failed_after:.0f} s after the server was lost"
    assert "MLflow failed while training" in stderr
    assert "Traceback" not in stderr
    assert _champion(alias) == champion  # the champion did not move
