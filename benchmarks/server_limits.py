"""What the request limits cost: `serve` (guarded protocol) vs plain uvicorn, side by side.

`make bench-limits` bakes the defaults, runs the pipeline, then starts the service twice on the
same champion: as `<package> serve` does (uvicorn + httptools with the header size/count limits,
header/body timeouts and requests-in-flight limit of api/server.py) and as the image ran it
before (`uvicorn ... --http httptools`, no limits). wrk loads them alternately, ROUNDS times per
scenario; the table gives medians and the guarded/plain ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from serving import SCENARIOS, Server, prepare_project, sample_records, start, wrk


def servers(project: Path) -> dict[str, list[str]]:
    bin_dir = project / ".venv" / "bin"
    return {
        "guarded (serve)": [str(bin_dir / "my_ml_service"), "serve", "--port", "{port}"],
        "plain uvicorn": [
            str(bin_dir / "uvicorn"), "my_ml_service.api.main:create_app", "--factory",
            "--port", "{port}", "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", "--timeout-keep-alive", "75",
        ],
    }  # fmt: skip


def bodies(project: Path) -> dict[int, str]:
    records = sample_records(project)
    return {1: json.dumps(records[0]), 100: json.dumps(records)}


def measure(project: Path, seconds: int, rounds: int, lua_dir: Path) -> dict[str, dict[str, float]]:
    env = {"OMP_NUM_THREADS": "1"}
    running: list[Server] = [
        start(name, command, project, "/ready", env) for name, command in servers(project).items()
    ]
    payloads = bodies(project)
    samples: dict[str, list[dict[str, float]]] = {}
    try:
        for server in running:  # warm up
            wrk(server.url + "/predict", payloads[1], 4, 2, lua_dir)
        for _ in range(rounds):
            for scenario, connections, rows in SCENARIOS:
                for server in running:
                    result = wrk(
                        server.url + "/predict", payloads[rows], connections, seconds, lua_dir
                    )
                    samples.setdefault(f"{server.name} | {scenario} c={connections}", []).append(
                        result
                    )
    finally:
        for server in running:
            server.stop()
    return {
        cell: {key: statistics.median(result[key] for result in results) for key in results[0]}
        for cell, results in samples.items()
    }


def report(cells: dict[str, dict[str, float]]) -> str:
    guarded, plain = servers(Path())
    lines = [
        f"| load | {guarded} req/s, p50, p99 | {plain} req/s, p50, p99 | req/s ratio |",
        "|---|---|---|---|",
    ]
    for scenario, connections, _ in SCENARIOS:
        ours = cells[f"{guarded} | {scenario} c={connections}"]
        theirs = cells[f"{plain} | {scenario} c={connections}"]
        errors = ours["errors"] + theirs["errors"]
        lines.append(
            f"| {scenario}, c={connections} "
            f"| {ours['rps']:.0f}, {ours['p50']:.2f} ms, {ours['p99']:.2f} ms "
            f"| {theirs['rps']:.0f}, {theirs['p50']:.2f} ms, {theirs['p99']:.2f} ms "
            f"| {ours['rps'] / theirs['rps']:.2f}"
            + (f" ({errors:.0f} errors)" if errors else "")
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        project = prepare_project(Path(work), "limits", None)
        print(report(measure(project, options.seconds, options.rounds, Path(work))))


if __name__ == "__main__":
    main()
