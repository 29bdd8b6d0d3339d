"""The service image, for real: bake, run the pipeline, build with Docker, start, predict."""

from __future__ import annotations

import ast
import csv
import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import bake, free_port, run, uv_executable

# One worker builds the image once (`make test` runs tests on two workers, grouped).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("image")]

# Where Debian keeps locally added CA certificates (a TLS-intercepting proxy's, for example).
HOST_EXTRA_CERTS = Path("/usr/local/share/ca-certificates")
HEAVY = ["mlflow", "great_expectations", "evidently", "dvc", "matplotlib", "shap", "numba"]


def docker(*args: str, timeout: int = 900) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            f"docker {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout.strip()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The default project's service image, built after its pipeline exported a champion."""
    if (
        shutil.which("docker") is None
        or subprocess.run(["docker", "info"], capture_output=True, check=False).returncode
    ):
        pytest.fail(
            "these tests build and run the service image: start a Docker engine "
            "(on Debian without a registry, scripts/docker-env.sh installs and starts one)"
        )
    project = bake(tmp_path_factory.mktemp("image"))
    run(["make", "setup", f"UV={uv_executable()}"], project)
    run([uv_executable(), "run", "--locked", "dvc", "repro"], project)
    # A challenger (other hyperparameters) exported beside the champion: the image carries both.
    other = json.dumps({"max_iter": 100, "learning_rate": 0.05, "max_leaf_nodes": 7})
    cli = [uv_executable(), "run", "--locked", "env"]
    cli += [f"MY_ML_SERVICE_TRAIN__HYPERPARAMETERS={other}", "my_ml_service"]
    run([*cli, "train"], project)
    run([*cli, "evaluate"], project)
    run([*cli, "challenger", "2"], project)
    # The documented hook for TLS-intercepting proxies: this machine's extra CAs, if any.
    for certificate in HOST_EXTRA_CERTS.glob("*.crt"):
        shutil.copy(certificate, project / "docker" / "certs")
    tag = f"template-test-{uuid.uuid4().hex[:8]}:latest"
    base = os.environ.get("TEMPLATE_TEST_BASE_IMAGE")
    build_args = ["--build-arg", f"BASE_IMAGE={base}"] if base else []
    started = time.monotonic()
    docker("build", "--quiet", *build_args, "-t", tag, str(project), timeout=1800)
    print(f"\nimage {tag} built in {time.monotonic() - started:.0f} s")
    # The batch image, as `make image` builds it beside the service's (the same build stage).
    docker("build", "--quiet", *build_args, "--target", "batch", "-t", batch_tag(tag), str(project))
    yield tag, project
    docker("rmi", "--force", tag, batch_tag(tag))


def batch_tag(tag: str) -> str:
    """The batch image's tag beside a service image's (the Makefile's BATCH_IMAGE default)."""
    return tag.replace(":", "-batch:")


def installed(tag: str, modules: list[str]) -> list[str]:
    """Which of `modules` the image's Python can import."""
    probe = f"import importlib.util as u; print([m for m in {modules!r} if u.find_spec(m)])"
    return ast.literal_eval(docker("run", "--rm", "--entrypoint", "python", tag, "-c", probe))


def a_record(project: Path) -> dict[str, float]:
    """The first held-back production row, without its label, as the API takes it."""
    header, *rows = (project / "data/prepared/production.csv").read_text().splitlines()
    return {
        name: float(value)
        for name, value in zip(header.split(","), rows[0].split(","), strict=True)
        if name != "diagnosis"
    }


def _get(url: str, timeout: float = 2) -> tuple[int, dict[str, object]]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, json.loads(response.read())


def test_image_is_slim_non_root_and_free_of_the_training_stack(image: tuple[str, Path]) -> None:
    tag, _ = image
    size_mb = int(docker("image", "inspect", "--format", "{{.Size}}", tag)) / 1e6
    print(f"\nimage size: {size_mb:.0f} MB")
    assert size_mb < 1000
    assert docker("image", "inspect", "--format", "{{.Config.User}}", tag) == "10001:10001"
    assert installed(tag, list(HEAVY)) == []
    # The champion has an ONNX graph: the default build leaves the scikit-learn stack out, and
    # pandas with it (the service never imports it); the batch image keeps pandas for `score`.
    modules = ["sklearn", "scipy", "joblib", "pandas", "onnxruntime"]
    assert installed(tag, modules) == ["onnxruntime"]
    assert installed(batch_tag(tag), [*HEAVY, *modules]) == ["pandas", "onnxruntime"]
    batch_mb = int(docker("image", "inspect", "--format", "{{.Size}}", batch_tag(tag))) / 1e6
    print(f"batch image size: {batch_mb:.0f} MB")
    certs = "import glob; print(glob.glob('/usr/local/share/ca-certificates/extra/*.crt'))"
    assert docker("run", "--rm", "--entrypoint", "python", tag, "-c", certs) == "[]"


def test_the_onnx_only_image_names_the_rebuild_when_asked_for_scikit_learn(
    image: tuple[str, Path],
) -> None:
    tag, _ = image
    program = (
        "from my_ml_service.bundle import ModelNotReadyError, load_champion\n"
        "from my_ml_service.settings import load_settings\n"
        "settings = load_settings()\n"
        "try:\n"
        "    load_champion(settings.registry.export_dir, settings.task, 'sklearn')\n"
        "except ModelNotReadyError as error:\n"
        "    print(error)\n"
    )
    said = docker("run", "--rm", "--entrypoint", "python", tag, "-c", program)
    assert "needs scikit-learn, which is not installed here" in said
    assert "--build-arg RUNTIME=sklearn" in said


def test_container_starts_reports_ready_and_predicts(image: tuple[str, Path]) -> None:
    tag, project = image
    container = docker(
        "run", "--detach", "--read-only",
        "--tmpfs", "/app/logs/predictions:uid=10001,gid=10001",
        "--publish", "127.0.0.1::8000", tag,
    )  # fmt: skip
    try:
        port = docker("port", container, "8000/tcp").splitlines()[0].rsplit(":", 1)[1]
        url = f"http://127.0.0.1:{port}"
        started, deadline = time.monotonic(), time.monotonic() + 120
        while True:
            try:
                status, readiness = _get(f"{url}/ready")
                if status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("no /ready within 120 s:\n" + docker("logs", container))
                time.sleep(0.25)
        print(f"\ncontainer ready in {time.monotonic() - started:.1f} s")
        assert readiness == {"ready": True, "model_version": "1"}
        assert _get(f"{url}/model")[1]["runtime"] == "onnx"
        assert docker("exec", container, "id", "-u") == "10001"
        record = a_record(project)
        request = urllib.request.Request(
            f"{url}/predict",
            data=json.dumps([record, record]).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
            assert response.headers["x-model-version"] == "1"
        assert answer["model_version"] == "1"
        assert len(answer["predictions"]) == 2
        assert answer["predictions"][0]["prediction"] in {"benign", "malignant"}
        # Docker's own HEALTHCHECK (every 10 s) agrees.
        deadline = time.monotonic() + 60
        while docker("inspect", "--format", "{{.State.Health.Status}}", container) != "healthy":
            if time.monotonic() > deadline:
                pytest.fail("the container never became healthy")
            time.sleep(1)
        # Both records reached the prediction log on the mounted volume (written off-request).
        deadline = time.monotonic() + 10
        while True:
            logged = docker(
                "exec", container, "sh", "-c", "cat /app/logs/predictions/*.jsonl || true"
            )
            if len(logged.splitlines()) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert [json.loads(line)["row"] for line in logged.splitlines()] == [0, 1]
        docker("stop", "--time", "20", container)  # graceful: drains, flushes, exits 0
        assert docker("inspect", "--format", "{{.State.ExitCode}}", container) == "0"
    finally:
        subprocess.run(["docker", "rm", "--force", container], capture_output=True, check=False)


def _started(tag: str, *env: str) -> tuple[str, str]:
    """A read-only container of `tag` with `env` (NAME=value), ready: (its id, its URL)."""
    container = docker(
        "run", "--detach", "--read-only",
        "--tmpfs", "/app/logs/predictions:uid=10001,gid=10001",
        "--publish", "127.0.0.1::8000", *(f"--env={item}" for item in env), tag,
    )  # fmt: skip
    port = docker("port", container, "8000/tcp").splitlines()[0].rsplit(":", 1)[1]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if _get(f"{url}/ready")[0] == 200:
                return container, url
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail("no /ready within 120 s:\n" + docker("logs", container))
            time.sleep(0.25)


def test_the_image_serves_its_challenger_as_the_environment_says(image: tuple[str, Path]) -> None:
    """One image, both bundles: off by default; a canary of all keys answered by v2; shadow
    answered by v1 with v2 scoring every record."""
    tag, project = image
    record = json.dumps(a_record(project)).encode()
    headers = {"Content-Type": "application/json", "X-Routing-Key": "user-1"}
    for mode, answering in [("off", "1"), ("canary", "2"), ("shadow", "1")]:
        container, url = _started(
            tag, f"MY_ML_SERVICE_SERVE__ROLLOUT={mode}", "MY_ML_SERVICE_SERVE__CHALLENGER_SHARE=1"
        )
        try:
            rollout = _get(f"{url}/model")[1]["rollout"]
            assert rollout["mode"] == mode, rollout  # type: ignore[index]
            for _ in range(3):
                request = urllib.request.Request(f"{url}/predict", data=record, headers=headers)
                with urllib.request.urlopen(request, timeout=10) as response:
                    assert response.headers["x-model-version"] == answering, mode
            if mode == "shadow":
                deadline = time.monotonic() + 10
                line = 'model_predictions_total{model_version="2",role="shadow"} 3.0'
                while line not in urllib.request.urlopen(f"{url}/metrics").read().decode():
                    assert time.monotonic() < deadline, "the shadow challenger scored nothing"
                    time.sleep(0.2)
        finally:
            subprocess.run(["docker", "rm", "--force", container], capture_output=True, check=False)


def _batch_job(project: Path) -> dict[str, Any]:
    """The Indexed Job spec of k8s/batch's CronJob, as kustomize renders it."""
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(project / "k8s" / "batch")],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    cron = next(doc for doc in yaml.safe_load_all(rendered.stdout) if doc["kind"] == "CronJob")
    return dict(cron["spec"]["jobTemplate"]["spec"])


def test_the_batch_jobs_shards_score_every_row_once_in_the_image(
    image: tuple[str, Path], tmp_path: Path
) -> None:
    """Each index of the Indexed Job, run as Kubernetes would (read-only, uid 10001, no network).

    The shards together answer every good row once, as the local `score` does, and the bad row
    is rejected with its reason by exactly one shard.
    """
    tag, project = image
    spec = _batch_job(project)
    container = spec["template"]["spec"]["containers"][0]
    user = spec["template"]["spec"]["securityContext"]["runAsUser"]
    # The batch image `make image` builds: the service's has no pandas, which `score` needs.
    assert container["image"] == batch_tag("my-ml-service:latest")
    header, *rows = (project / "data/prepared/production.csv").read_text().splitlines()
    broken = rows[0].split(",")
    broken[0] = "not-a-number"  # the first feature: the row breaks the contract
    data = tmp_path / "data"
    (data / "in").mkdir(parents=True)
    source = data / "in" / "batch.csv"
    source.write_text("\n".join([header, *rows, ",".join(broken)]) + "\n")
    for path in (data, data / "in", source):
        os.chown(path, user, user)
    # Kubernetes fills $(JOB_NAME) from the pod's label and JOB_COMPLETION_INDEX itself.
    args = [arg.replace("$(JOB_NAME)", "nightly-1") for arg in container["args"]]
    env = [f"{item['name']}={item['value']}" for item in container["env"] if "value" in item]
    for index in range(spec["completions"]):
        docker(
            "run", "--rm", "--read-only", "--network", "none", "--user", f"{user}:{user}",
            "--tmpfs", "/tmp", "--volume", f"{data}:/data",
            "--env", f"JOB_COMPLETION_INDEX={index}", *(f"--env={item}" for item in env),
            "--entrypoint", container["command"][0], batch_tag(tag), *args,
        )  # fmt: skip
    out = data / "out" / "nightly-1"
    shards = sorted(out.glob("batch.predictions-*-of-*.csv"))
    assert len(shards) == spec["completions"]
    scored = [row for path in shards for row in _csv_rows(path)]
    rejected = [row for path in out.glob("batch.rejects-*.csv") for row in _csv_rows(path)]
    assert sorted(int(row["row"]) for row in scored) == list(range(len(rows)))  # each row once
    assert [row["row"] for row in rejected] == [str(len(rows))]
    assert "not-a-number" in rejected[0]["reason"]
    assert len(list((data / "logs" / "predictions").glob("*.jsonl"))) == spec["completions"]
    local = tmp_path / "local.csv"
    run(
        [uv_executable(), "run", "--locked", "my_ml_service", "score", str(source),
         "--output", str(local), "--log-rows", "0"],
        project,
    )  # fmt: skip
    # The same answers, to the written digit: the image scores as the project does.
    answers = [name for name in _csv_rows(local)[0] if name.startswith(("prediction", "prob"))]
    answers.remove("prediction_id")
    by_row = {row["row"]: [row[name] for name in answers] for row in scored}
    assert by_row == {row["row"]: [row[name] for name in answers] for row in _csv_rows(local)}
    # ...on ONNX, and within the export's tolerance of scikit-learn's answers.
    reference = tmp_path / "sklearn.csv"
    run(
        ["env", "MY_ML_SERVICE_SERVE__RUNTIME=sklearn", uv_executable(), "run", "--locked",
         "my_ml_service", "score", str(source), "--output", str(reference), "--log-rows", "0",
         "--rejects", str(tmp_path / "sklearn.rejects.csv")],
        project,
    )  # fmt: skip
    classes = any(name.startswith("prob") for name in answers)
    for row in _csv_rows(reference):
        for name, value in zip(answers, by_row[row["row"]], strict=True):
            if classes and name == "prediction":
                assert value == row[name]
            else:
                assert float(value) == pytest.approx(float(row[name]), rel=1e-4, abs=1e-4)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def test_the_projects_own_smoke_test_passes_on_the_image(image: tuple[str, Path]) -> None:
    """`make smoke`, the container check the generated CI runs on every image, works here."""
    tag, project = image
    output = run(
        ["make", "--no-print-directory", "smoke", f"IMAGE={tag}", f"UV={uv_executable()}"], project
    )
    assert "runs as uid 10001" in output
    assert f"smoke test passed: {tag}" in output
    sent = (project / "data" / "simulated" / "clean-0.labels.csv").read_text().splitlines()
    held_back = (project / "data" / "prepared" / "production.csv").read_text().splitlines()
    assert len(sent) == len(held_back)  # header + every held-back row answered by the container


def test_compose_stack_is_consistent_with_the_dockerfile(image: tuple[str, Path]) -> None:
    """docker-compose.yml builds stages that exist and sets settings the service knows."""
    import yaml

    _, project = image
    compose = yaml.safe_load((project / "docker-compose.yml").read_text())
    stages = {
        line.split(" AS ", 1)[1].strip()
        for line in (project / "Dockerfile").read_text().splitlines()
        if line.startswith("FROM ") and " AS " in line
    }
    built = {
        name: service["build"].get("target") or service["build"]["dockerfile"]
        for name, service in compose["services"].items()
        if "build" in service
    }
    assert built == {
        "api": "service",
        "mlflow": "tracking",
        "postgres": "postgres",
        # Its own file: the legacy builder would build a stage of the Dockerfile for every image.
        "prometheus": "docker/prometheus.Dockerfile",
    }
    assert {built["api"], built["mlflow"], built["postgres"]} <= stages
    assert (project / built["prometheus"]).is_file()
    assert not any("prometheus" in stage for stage in stages)
    # Prometheus and Grafana only on request: `make up` pulls nothing from a registry.
    optional = {name for name, service in compose["services"].items() if "profiles" in service}
    assert optional == {"prometheus", "grafana"}
    prefix = project.name.replace("-", "_").upper() + "_SERVE__"
    assert set(compose["services"]["api"]["environment"]) == {
        prefix + "REQUIRE_API_KEY",
        prefix + "API_KEY",
        prefix + "ROLLOUT",
        prefix + "CHALLENGER_SHARE",
        prefix + "SHADOW_SHARE",
    }
    settings = yaml.safe_load((project / "params.yaml").read_text())["serve"]
    for name in compose["services"]["api"]["environment"]:
        assert name.removeprefix(prefix).lower() in {*settings, "api_key"}, name
    assert compose["services"]["api"]["read_only"] is True


def test_tracking_server_image_serves_mlflow(image: tuple[str, Path]) -> None:
    """The compose stack's MLflow stage builds from the lock and answers /health."""
    _, project = image
    tag = f"template-test-tracking-{uuid.uuid4().hex[:8]}:latest"
    base = os.environ.get("TEMPLATE_TEST_BASE_IMAGE")
    build_args = ["--build-arg", f"BASE_IMAGE={base}"] if base else []
    docker(
        "build",
        "--quiet",
        *build_args,
        "--target",
        "tracking",
        "-t",
        tag,
        str(project),
        timeout=1800,
    )
    container = ""
    try:
        assert (
            docker(
                "run", "--rm", "--entrypoint", "python", tag, "-c", "import psycopg; print('ok')"
            )
            == "ok"
        )
        container = docker(
            "run", "--detach", "--publish", "127.0.0.1::5000", tag,
            "mlflow", "server", "--host", "0.0.0.0", "--port", "5000",
            "--backend-store-uri", "sqlite:////tmp/mlflow.db",
            "--artifacts-destination", "/mlartifacts",
        )  # fmt: skip
        port = docker("port", container, "5000/tcp").splitlines()[0].rsplit(":", 1)[1]
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/health", timeout=2
                ) as response:
                    assert response.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        "the tracking server did not answer /health:\n" + docker("logs", container)
                    )
                time.sleep(0.5)
        assert docker("exec", container, "id", "-u") == "10001"
    finally:
        if container:
            subprocess.run(["docker", "rm", "--force", container], capture_output=True, check=False)
        subprocess.run(["docker", "rmi", "--force", tag], capture_output=True, check=False)


def test_the_compose_stack_runs_end_to_end(image: tuple[str, Path]) -> None:
    """`make up` (Compose v1 here): the API predicts on loopback, a run logged from the host
    lands in the stack's PostgreSQL, the API container reaches MLflow; `make down` removes it."""
    _, project = image
    ports = {
        "API_PORT": str(free_port()),
        "MLFLOW_PORT": str(free_port()),
        "PROMETHEUS_PORT": str(free_port()),
    }
    env = {**os.environ, **ports, "UV": uv_executable()}
    base = os.environ.get("TEMPLATE_TEST_BASE_IMAGE", "")
    v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    compose = ["docker", "compose"] if v2.returncode == 0 else ["docker-compose"]
    compose += ["--project-name", project.name]

    def container(service: str) -> str:
        found = subprocess.run(
            [*compose, "ps", "-q", service], cwd=project, capture_output=True, text=True
        )
        return found.stdout.strip()

    def make(*targets: str) -> str:
        command = ["make", "--no-print-directory", *targets, f"BASE_IMAGE={base}"]
        result = subprocess.run(
            command, cwd=project, env=env, capture_output=True, text=True, timeout=1800
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    try:
        assert "stack healthy" in make("up")
        published = docker("port", container("api"), "8000/tcp")
        assert published.startswith("127.0.0.1:"), published  # loopback only
        request = urllib.request.Request(
            f"http://127.0.0.1:{ports['API_PORT']}/predict",
            data=json.dumps(a_record(project)).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["predictions"][0]["prediction"]
        log_run = (
            "import mlflow; mlflow.set_experiment('compose-check'); "
            "run = mlflow.start_run(run_name='from-the-host'); mlflow.log_metric('m', 1.0); "
            "mlflow.end_run(); print(run.info.run_id)"
        )
        tracking = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports['MLFLOW_PORT']}"}
        logged = subprocess.run(
            [uv_executable(), "run", "--locked", "python", "-c", log_run],
            cwd=project, env={**env, **tracking}, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert logged.returncode == 0, logged.stderr
        run_id = logged.stdout.strip().splitlines()[-1]
        stored = docker(
            "exec", container("postgres"), "psql", "-U", "mlflow", "-d", "mlflow",
            "-tAc", f"select name from runs where run_uuid = '{run_id}'",
        )  # fmt: skip
        assert stored == "from-the-host"
        # What is checked is that the API's container is let in (allowed hosts), not how fast:
        # beside another worker's build, the first answer took over 5 s once.
        reach = (
            "import urllib.request as r; "
            "print(r.urlopen('http://mlflow:5000/api/2.0/mlflow/experiments/search"
            "?max_results=1', timeout=60).status)"
        )
        assert docker("exec", container("api"), "python", "-c", reach) == "200"
        # The observability profile's Prometheus (Debian's, built from the same base; Grafana
        # is pulled from Docker Hub, which this machine cannot reach): it scrapes the api and
        # loads the project's rules.
        observed = subprocess.run(
            [*compose, "--profile", "observability", "up", "--detach", "--build", "prometheus"],
            cwd=project, env={**env, "BASE_IMAGE": base}, capture_output=True, text=True,
            timeout=1800,
        )  # fmt: skip
        assert observed.returncode == 0, observed.stdout + observed.stderr
        prometheus = f"http://127.0.0.1:{ports['PROMETHEUS_PORT']}"
        deadline = time.monotonic() + 120
        while True:
            try:
                query = f"{prometheus}/api/v1/query?query=up%7Bjob%3D%22prediction-service%22%7D"
                found = _get(query, timeout=5)[1]["data"]["result"]  # type: ignore[index]
                if found and found[0]["value"][1] == "1":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, docker("logs", container("prometheus"))
            time.sleep(1)
        rules = _get(f"{prometheus}/api/v1/rules", timeout=5)[1]["data"]["groups"]  # type: ignore[index]
        assert sum(len(group["rules"]) for group in rules) >= 10
        make("down")  # Prometheus included: its network goes with the rest
        assert container("api") == container("mlflow") == container("postgres") == ""
    finally:
        subprocess.run(
            [*compose, "--profile", "observability", "down", "--volumes"],
            cwd=project, capture_output=True, check=False,
        )  # fmt: skip
