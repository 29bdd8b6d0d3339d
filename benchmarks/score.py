"""Batch scoring benchmark: `score` on 100k and 1M rows, ONNX runtime vs scikit-learn, side by side.

Run `make bench-score`. Bakes the default project, runs its pipeline, writes files of N rows
drawn (with replacement) from its held-back production rows, then times
`my_ml_service score FILE` on each runtime, alternating, and reads each run's peak resident
memory from the kernel (wait4). Rows per minute are the file's rows over the wall time of the
whole command (start-up, reading, checks, the model, writing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from serving import prepare_project

GENERATE = """
import sys
import pandas as pd
rows = pd.read_csv("data/prepared/production.csv").drop(columns=[sys.argv[2]])
rows.sample(int(sys.argv[3]), replace=True, random_state=0).to_csv(sys.argv[1], index=False)
"""
RUNTIMES = ("onnx", "sklearn")


def target(project: Path) -> str:
    """The label column the generated files leave out (the contract's target)."""
    for line in (project / "contract.yaml").read_text().splitlines():
        if line.startswith("target:"):
            return line.split("name:", 1)[1].split(",", 1)[0].strip()
    raise SystemExit("no target in contract.yaml")


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one run of `command`."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per cell")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-score-"))
    project = prepare_project(work, "default", None)
    python, cli = project / ".venv/bin/python", project / ".venv/bin/my_ml_service"
    print(f"machine: {os.cpu_count()} cores; median of {arguments.rounds} alternating runs")
    print("| rows | runtime | wall time | rows per minute | peak RSS |")
    print("|---|---|---|---|---|")
    for size in arguments.sizes:
        source = work / f"batch-{size}.csv"
        subprocess.run(
            [str(python), "-c", GENERATE, str(source), target(project), str(size)],
            cwd=project,
            check=True,
        )
        runs: dict[str, list[tuple[float, float]]] = {runtime: [] for runtime in RUNTIMES}
        for _ in range(arguments.rounds):
            for runtime in RUNTIMES:
                output = work / f"out-{runtime}-{size}.csv"
                command = [str(cli), "score", str(source), "--output", str(output)]
                env = {"MY_ML_SERVICE_SERVE__RUNTIME": runtime}
                runs[runtime].append(timed([*command, "--log-rows", "0", "--force"], project, env))
        for runtime in RUNTIMES:
            wall = statistics.median(run[0] for run in runs[runtime])
            rss = max(run[1] for run in runs[runtime])
            print(
                f"| {size:,} | {runtime} | {wall:.1f} s | {size / wall * 60:,.0f} | {rss:.0f} MB |"
            )
        source.unlink()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
