"""Rollout benchmark: what serving a challenger beside the champion costs (serve.rollout).

Run `make bench-rollout` (needs wrk). Bakes the default project, runs its pipeline, trains a
second model (other hyperparameters) and makes it the challenger, then starts the service four
times side by side on the same champion: rollout off; shadow (the challenger also scores every
request, off the response path); shadow with `serve.shadow_share` 0.25; and a canary (20% of
routing keys answered by the challenger). Each is loaded in turn with wrk (one thread, so the
server keeps a core): single rows and 100-row batches at concurrency 8 as fast as answered
(saturation), and single rows at 8 connections that each wait 10 ms after an answer (a
steady load of about half the service's capacity here). Every cell is the median of the
rounds, the servers alternating so the machine's drift hits them alike; the ratio columns
divide by rollout off. `--project` measures an already baked project that has a challenger.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

# Run as `python benchmarks/rollout.py`: the serving benchmark beside it holds the shared parts.
from serving import (
    UV,
    Server,
    median_cell,
    prepare_project,
    run,
    sample_records,
    start,
    wrk,
    wrk_arguments,
)

# The same service and champion, four ways (the settings each is started with).
PREFIX = "MY_ML_SERVICE_SERVE__"
MODES: dict[str, dict[str, str]] = {
    "off": {"ROLLOUT": "off"},
    "shadow": {"ROLLOUT": "shadow"},
    "shadow 25%": {"ROLLOUT": "shadow", "SHADOW_SHARE": "0.25"},
    "canary 20%": {"ROLLOUT": "canary", "CHALLENGER_SHARE": "0.2"},
}
# (label, connections, rows per request, ms each connection waits after an answer): flat out,
# and a steady load of about half the service's capacity here (8 connections, 10 ms apart).
SCENARIOS = [
    ("1 row", 8, 1, 0),
    ("100 rows", 8, 100, 0),
    ("1 row, paced 10 ms", 8, 1, 10),
]
# Another model than the champion: other hyperparameters of the default estimator.
CHALLENGER = {"max_iter": 100, "learning_rate": 0.05, "max_leaf_nodes": 7}


def make_challenger(project: Path) -> str:
    """Train, evaluate and export a second version as the challenger; return its version."""
    cli = [UV, "run", "--locked", "my_ml_service"]
    env = {"MY_ML_SERVICE_TRAIN__HYPERPARAMETERS": json.dumps(CHALLENGER)}
    run([*cli, "train"], project, env)
    run([*cli, "evaluate"], project, env)
    version = str(json.loads((project / "reports/train/run.json").read_text())["model_version"])
    run([*cli, "challenger", version], project)
    return version


def start_mode(project: Path, mode: str) -> Server:
    command = [str(project / ".venv/bin/my_ml_service"), "serve", "--port", "{port}"]
    env = {PREFIX + name: value for name, value in MODES[mode].items()}
    return start(mode, command, project, "/ready", env)


def shadow_scored(server: Server) -> float:
    """The challenger's shadow predictions so far, from /metrics (the shadow really ran)."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("model_predictions_total{") and 'role="shadow"' in line
    )


def measure(project: Path, seconds: int, rounds: int, lua_dir: Path) -> dict[str, Any]:
    records = sample_records(project)
    bodies = {1: json.dumps(records[0]), 100: json.dumps(records)}
    servers = [start_mode(project, mode) for mode in MODES]
    samples: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        for server in servers:  # warm up
            wrk(server.url + "/predict", bodies[1], 4, 2, lua_dir)
        for _ in range(rounds):
            for scenario, connections, rows, pace in SCENARIOS:
                for server in servers:
                    url = server.url + "/predict"
                    result = wrk(url, bodies[rows], connections, seconds, lua_dir, pace)
                    samples.setdefault((server.name, scenario), []).append(result)
        shadowed = {s.name: shadow_scored(s) for s in servers if s.name.startswith("shadow")}
        rss = {server.name: server.rss_mb() for server in servers}
    finally:
        for server in servers:
            server.stop()
    cells = {
        f"{mode} | {scenario}": median_cell(results)
        for (mode, scenario), results in samples.items()
    }
    return {"cells": cells, "rss_mb": rss, "shadow_scored": shadowed}


def report(result: dict[str, Any]) -> str:
    cells: dict[str, dict[str, float]] = result["cells"]
    rss: dict[str, float] = result["rss_mb"]
    modes = list(MODES)
    lines = [
        "| load | " + " | ".join(f"{mode}: req/s, p50, p99" for mode in modes)
        + " | p99 vs off: shadow, shadow 25% | req/s vs off: shadow, shadow 25% |",
        "|---" * (len(modes) + 3) + "|",
    ]  # fmt: skip
    for scenario, connections, _, _ in SCENARIOS:
        row = {mode: cells[f"{mode} | {scenario}"] for mode in modes}
        errors = sum(cell["errors"] for cell in row.values())
        shown = [f"{c['rps']:.0f}, {c['p50']:.2f} ms, {c['p99']:.2f} ms" for c in row.values()]
        off = row["off"]
        p99 = [row[mode]["p99"] / off["p99"] for mode in ("shadow", "shadow 25%")]
        rps = [row[mode]["rps"] / off["rps"] for mode in ("shadow", "shadow 25%")]
        lines.append(
            f"| {scenario}, c={connections} | " + " | ".join(shown)
            + f" | **{p99[0]:.2f}**, {p99[1]:.2f} | {rps[0]:.2f}, {rps[1]:.2f}"
            + (f" ({errors:.0f} errors)" if errors else "")
            + " |"
        )  # fmt: skip
    lines.append(
        "| RSS after the load | " + " | ".join(f"{rss[mode]:.0f} MB" for mode in modes) + " | | |"
    )
    scored = ", ".join(f"{name} {count:.0f}" for name, count in result["shadow_scored"].items())
    lines.append(f"\nRecords scored by the shadow challenger: {scored}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="folder for the baked project (default: a temp)")
    parser.add_argument(
        "--project", type=Path, help="measure this baked project (with a challenger) instead"
    )
    arguments = wrk_arguments(parser)
    work = arguments.work or Path(tempfile.mkdtemp(prefix="bench-rollout-"))
    lua_dir = work / "lua"
    lua_dir.mkdir(parents=True, exist_ok=True)
    if arguments.project:
        project = arguments.project.resolve()
        version = json.loads((project / "models/challenger/metadata.json").read_text())["version"]
    else:
        project = prepare_project(work, "default", None)
        version = make_challenger(project)
    result = measure(project, arguments.seconds, arguments.rounds, lua_dir)
    (work / "results.json").write_text(json.dumps(result, indent=2))
    print(
        f"machine: {os.cpu_count()} cores; champion v1, challenger v{version}; "
        f"wrk -t1 -d{arguments.seconds}s, median of {arguments.rounds} alternating rounds"
    )
    print(report(result))
    print(f"\nraw results: {work / 'results.json'}")


if __name__ == "__main__":
    main()
