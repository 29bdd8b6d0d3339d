"""Serving benchmark: the generated service vs `mlflow models serve`, same model, same machine.

The generated service runs twice: on the bundle's ONNX graph (serve.runtime auto, the default
when the export passed parity) and on scikit-learn (serve.runtime sklearn).

Run `make bench-serving` (needs wrk: `apt-get install wrk`). Bakes the default project twice,
once with the default estimator and once with a logistic regression (where the serving stack,
not the model, dominates), runs each pipeline, then for each model starts both servers side by
side and loads them in turn with wrk (one thread, so the server keeps a core): single rows at
concurrency 1, 8 and 32, and 100-row batches at 8. Every cell is the median of the rounds,
ours and MLflow's alternating so the machine's drift hits both alike. Also reported: cold start
(process start -> ready), resident memory of the whole process tree, and the floor: the model's
own in-process predict time, which no server can beat.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parents[1]
UV = os.environ.get("UV") or shutil.which("uv") or "uv"
SCENARIOS = [("1 row", 1, 1), ("1 row", 8, 1), ("1 row", 32, 1), ("100 rows", 8, 100)]
ONNX, SKLEARN, MLFLOW = "ONNX runtime", "scikit-learn runtime", "mlflow models serve"
CEILING = "HTTP stack alone"
CEILING_SCENARIO = ("1 row", 8, 1)

# The ceiling: the service's HTTP stack as `serve` runs it (uvicorn, httptools with the limits of
# api/server.py, uvloop, FastAPI) answering POST /predict with a constant body, the size of a
# real answer, without reading the request. No server on this stack can answer faster.
CEILING_PROGRAM = """
import sys
import uvicorn
from fastapi import FastAPI, Response
from my_ml_service.api.server import protocol
from my_ml_service.settings import load_settings

app, answer = FastAPI(), sys.argv[2].encode()

@app.post("/predict")
async def predict() -> Response:
    return Response(answer, media_type="application/json")

@app.get("/ready")
async def ready() -> Response:
    return Response(b"{}", media_type="application/json")

serve = load_settings().serve
uvicorn.run(app, port=int(sys.argv[1]), loop="uvloop", http=protocol(serve), access_log=False)
"""

FLOOR_PROGRAM = """
import json, statistics, sys, time, warnings
import joblib, pandas as pd
warnings.simplefilter("ignore")
model = joblib.load("models/champion/model.joblib")
names = list(model.feature_names_in_)
frame = pd.read_csv("data/prepared/production.csv")[names].astype(float)
result = {}
for rows in (1, 100):
    batch = pd.DataFrame(frame.head(rows).to_numpy(), columns=names)
    model.predict_proba(batch)
    samples = []
    for _ in range(300):
        start = time.perf_counter(); model.predict_proba(batch)
        samples.append(time.perf_counter() - start)
    result[rows] = statistics.median(samples) * 1000
print(json.dumps(result))
"""


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    cold_start_s: float

    def rss_mb(self) -> float:
        """Resident memory of the server and all its descendants (mlflow forks uvicorn)."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        total, todo = 0, [self.process.pid]
        while todo:
            pid = todo.pop()
            todo.extend(children.get(pid, []))
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            found = re.search(r"^VmRSS:\s+(\d+)", status, re.MULTILINE)
            total += int(found.group(1)) if found else 0
        return total / 1024

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    environment = {**os.environ, **(env or {})}
    environment.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        command, cwd=cwd, env=environment, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start(name: str, command: list[str], cwd: Path, ready_path: str, env: dict[str, str]) -> Server:
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            with urllib.request.urlopen(url + ready_path, timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            if process.poll() is not None or time.perf_counter() - started > 300:
                sys.exit(f"{name} did not start: {' '.join(command)}")
            time.sleep(0.02)
    return Server(name, process, url, time.perf_counter() - started)


def wrk(
    url: str, body: str, connections: int, seconds: int, lua_dir: Path, pace_ms: int = 0
) -> dict[str, float]:
    """wrk's figures for `body` POSTed at `connections`; `pace_ms`: each connection waits that
    long after each answer (a steady load below saturation), else as fast as answered."""
    script = lua_dir / f"{abs(hash(body))}-{pace_ms}.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body)}\n"
        + (f"function delay() return {pace_ms} end\n" if pace_ms else "")
    )
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def latency(label: str) -> float:
        found = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if not found:
            sys.exit(f"could not read {label}% from wrk:\n{output}")
        return float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]

    requests = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {
        "rps": float(requests.group(1)) if requests else 0.0,
        "p50": latency("50"),
        "p99": latency("99"),
        "errors": float(errors.group(1)) if errors else 0.0,
        "socket_errors": 1.0 if socket_errors else 0.0,
    }


def median_cell(results: list[dict[str, float]]) -> dict[str, float]:
    """Each wrk figure's median over the rounds of one cell."""
    return {key: statistics.median(result[key] for result in results) for key in results[0]}


def wrk_arguments(parser: argparse.ArgumentParser) -> Any:
    """`parser`'s arguments with --seconds and --rounds, parsed; wrk must be installed."""
    parser.add_argument("--seconds", type=int, default=8, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per cell")
    arguments = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    return arguments


def bake(template: Path, out: Path) -> Path:
    """The default project baked from `template` (this one, or a copy at another commit)."""
    run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "-f", "-o", str(out), str(template)],
        TEMPLATE,
    )
    return out / "my-ml-service"


def prepare_project(work: Path, name: str, estimator: str | None) -> Path:
    project = bake(TEMPLATE, work / name)
    if estimator:
        params_file = project / "params.yaml"
        params = yaml.safe_load(params_file.read_text())
        params["train"]["estimator"] = estimator
        params["train"]["hyperparameters"] = {"max_iter": 1000}
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    run(["make", "setup", f"UV={UV}"], project)
    run([UV, "run", "--locked", "dvc", "repro"], project)
    # Compile the environment's bytecode up front, as the image does (UV_COMPILE_BYTECODE): with
    # PYTHONDONTWRITEBYTECODE set, every start would otherwise compile it again, for both servers.
    run([str(project / ".venv/bin/python"), "-m", "compileall", "-q", "-j0", ".venv"], project)
    return project


def sample_records(project: Path, count: int = 100) -> list[dict[str, float]]:
    """`count` records of the held-back production rows (repeated if fewer), as the API takes."""
    frame_rows = (project / "data/prepared/production.csv").read_text().splitlines()
    header = frame_rows[0].split(",")
    records = [
        {k: float(v) for k, v in zip(header, line.split(","), strict=True) if k != "diagnosis"}
        for line in frame_rows[1 : count + 1]
    ]
    while len(records) < count:
        records += records[: count - len(records)]
    return records


def benchmark(
    project: Path, label: str, seconds: int, rounds: int, lua_dir: Path
) -> dict[str, object]:
    # The floor runs as the service does: one OpenMP thread (see `serve`).
    floor = json.loads(
        run(
            [str(project / ".venv/bin/python"), "-c", FLOOR_PROGRAM],
            project,
            {"OMP_NUM_THREADS": "1"},
        )
    )
    names = json.loads((project / "models/champion/metadata.json").read_text())
    records = sample_records(project)
    bin_dir = project / ".venv" / "bin"

    def start_ours(runtime: str) -> Server:
        command = [str(bin_dir / "my_ml_service"), "serve", "--port", "{port}"]
        name = ONNX if runtime == "onnx" else SKLEARN
        return start(name, command, project, "/ready", {"MY_ML_SERVICE_SERVE__RUNTIME": runtime})

    def start_mlflow() -> Server:
        command = [
            str(bin_dir / "mlflow"), "models", "serve",
            "-m", f"models:/{names['model_name']}@champion",
            "--env-manager", "local", "--workers", "1", "--port", "{port}",
        ]  # fmt: skip
        # mlflow starts `uvicorn` from PATH: the project's environment must be on it.
        env = {
            "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db",
            "MLFLOW_DISABLE_TELEMETRY": "true",  # as the project's own commands (privacy.py)
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
        }
        return start(MLFLOW, command, project, "/ping", env)

    starters = [lambda: start_ours("onnx"), lambda: start_ours("sklearn"), start_mlflow]
    # Cold start: process start -> ready, median of alternating starts after one thrown-away
    # start each (it warms the page cache).
    starts: dict[str, list[float]] = {ONNX: [], SKLEARN: [], MLFLOW: []}
    for attempt in range(4):
        for starter in starters:
            server = starter()
            server.stop()
            if attempt:
                starts[server.name].append(server.cold_start_s)
    cold = {name: statistics.median(values) for name, values in starts.items()}
    servers = [starter() for starter in starters]
    with urllib.request.urlopen(
        urllib.request.Request(
            servers[0].url + "/predict",
            json.dumps(records[0]).encode(),
            {"Content-Type": "application/json"},
        ),
        timeout=10,
    ) as response:
        answer = response.read().decode()
    ceiling_command = [str(bin_dir / "python"), "-c", CEILING_PROGRAM, "{port}", answer]
    servers.append(start(CEILING, ceiling_command, project, "/ready", {}))
    bodies = {
        **{(name, 1): json.dumps(records[0]) for name in (ONNX, SKLEARN, CEILING)},
        **{(name, 100): json.dumps(records) for name in (ONNX, SKLEARN)},
        (MLFLOW, 1): json.dumps({"dataframe_records": records[:1]}),
        (MLFLOW, 100): json.dumps({"dataframe_records": records}),
    }
    paths = {ONNX: "/predict", SKLEARN: "/predict", MLFLOW: "/invocations", CEILING: "/predict"}
    try:
        for server in servers:  # warm up, and check both answer the same
            wrk(server.url + paths[server.name], bodies[(server.name, 1)], 4, 2, lua_dir)
        samples: dict[tuple[str, str, int], list[dict[str, float]]] = {}
        for _ in range(rounds):
            for scenario, connections, rows in SCENARIOS:
                for server in servers:
                    if server.name == CEILING and (scenario, connections, rows) != CEILING_SCENARIO:
                        continue
                    body = bodies[(server.name, rows)]
                    result = wrk(
                        server.url + paths[server.name], body, connections, seconds, lua_dir
                    )
                    samples.setdefault((server.name, scenario, connections), []).append(result)
        rss = {server.name: server.rss_mb() for server in servers if server.name != CEILING}
    finally:
        for server in servers:
            server.stop()
    cells = {
        f"{name} | {scenario} c={connections}": median_cell(results)
        for (name, scenario, connections), results in samples.items()
    }
    return {
        "model": label,
        "floor_ms": {"1": floor["1"], "100": floor["100"]},
        "cold_start_s": cold,
        "rss_mb": rss,
        "cells": cells,
    }


def image_size_mb(project: Path) -> float | None:
    base = os.environ.get("BENCH_BASE_IMAGE")
    if (
        shutil.which("docker") is None
        or subprocess.run(["docker", "info"], capture_output=True, check=False).returncode
    ):
        return None
    for certificate in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copy(certificate, project / "docker" / "certs")
    tag = "bench-serving:latest"
    args = ["--build-arg", f"BASE_IMAGE={base}"] if base else []
    run(["docker", "build", "--quiet", *args, "-t", tag, "."], project)
    size = int(run(["docker", "image", "inspect", "--format", "{{.Size}}", tag], project)) / 1e6
    run(["docker", "rmi", tag], project)
    return size


def _cell(cell: dict[str, float]) -> str:
    return f"{cell['rps']:.0f}, {cell['p50']:.2f} ms, {cell['p99']:.2f} ms"


def report(results: list[dict[str, Any]], image_mb: float | None) -> str:
    lines = []
    for result in results:
        cells, floor = result["cells"], result["floor_ms"]
        cold, rss = result["cold_start_s"], result["rss_mb"]
        lines.append(
            f"\n**{result['model']}** (floor: scikit-learn's predict in-process "
            f"{floor['1']:.2f} ms for 1 row, {floor['100']:.2f} ms for 100)\n"
        )
        lines.append(
            f"| load | {ONNX}: req/s, p50, p99 | {SKLEARN} | `{MLFLOW}` "
            "| ONNX / mlflow req/s | scikit-learn / mlflow req/s |"
        )
        lines.append("|---|---|---|---|---|---|")
        for scenario, connections, _ in SCENARIOS:
            row = {
                name: cells[f"{name} | {scenario} c={connections}"]
                for name in (ONNX, SKLEARN, MLFLOW)
            }
            errors = sum(cell["errors"] for cell in row.values())
            theirs = row[MLFLOW]["rps"]
            lines.append(
                f"| {scenario}, c={connections} | {_cell(row[ONNX])} | {_cell(row[SKLEARN])} "
                f"| {_cell(row[MLFLOW])} | **{row[ONNX]['rps'] / theirs:.1f}x** "
                f"| {row[SKLEARN]['rps'] / theirs:.1f}x"
                + (f" ({errors:.0f} errors)" if errors else "")
                + " |"
            )
        scenario, connections, _ = CEILING_SCENARIO
        ceiling = cells[f"{CEILING} | {scenario} c={connections}"]
        ours = cells[f"{ONNX} | {scenario} c={connections}"]
        lines.append(
            f"| {scenario}, c={connections}: the HTTP stack alone, a constant answer "
            f"| {_cell(ceiling)} | | "
            f"| ONNX runtime: **{ours['rps'] / ceiling['rps']:.0%}** of it | |"
        )
        lines.append(
            "| cold start (process start -> ready, median of 3) "
            + "".join(f"| {cold[name]:.1f} s " for name in (ONNX, SKLEARN, MLFLOW))
            + "| | |"
        )
        lines.append(
            "| RSS after the load (process tree) "
            + "".join(f"| {rss[name]:.0f} MB " for name in (ONNX, SKLEARN, MLFLOW))
            + f"| 1/{rss[MLFLOW] / rss[ONNX]:.1f} | 1/{rss[MLFLOW] / rss[SKLEARN]:.1f} |"
        )
    if image_mb is not None:
        lines.append(f"\nService image: {image_mb:.0f} MB.")
    return "\n".join(lines)


def main() -> None:
    arguments = wrk_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    lua_dir = work / "lua"
    lua_dir.mkdir()
    projects = {
        "default model (gradient boosting)": prepare_project(work, "default", None),
        "logistic regression": prepare_project(work, "logistic", "logistic_regression"),
    }
    results = [
        benchmark(project, label, arguments.seconds, arguments.rounds, lua_dir)
        for label, project in projects.items()
    ]
    image_mb = image_size_mb(projects["default model (gradient boosting)"])
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(
        f"machine: {os.cpu_count()} cores; wrk -t1 -d{arguments.seconds}s, "
        f"median of {arguments.rounds} alternating rounds"
    )
    print(report(results, image_mb))
    print(f"\nraw results: {work / 'results.json'}")


if __name__ == "__main__":
    main()
