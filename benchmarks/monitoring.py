"""Drift check time and peak memory for 10k, 100k and 1M rows (`make bench-monitoring`).

Bakes the default project, runs its pipeline (a champion and the training data as reference),
then writes batches of synthetic rows drawn from the data contract (uniform in each feature's
range) and times `monitor --data BATCH` as a user runs it: process start, reading the CSV, the
champion's predictions, the Evidently report, the HTML and JSON files. Peak memory is the
monitor process's maximum resident set. Above `monitor.max_rows` (100,000) the window is
sampled; the 1M row batch also runs with sampling switched off, side by side, to show what the
bound buys. Each cell is the median of the runs, the sampled and unsampled runs alternating.
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

from serving import prepare_project, run

SIZES = [10_000, 100_000, 1_000_000]
GENERATE_PROGRAM = """
import sys
import numpy as np, pandas as pd, yaml
contract = yaml.safe_load(open("contract.yaml"))
rows, path = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(0)
columns = {}
for column in contract["features"]:
    if column["type"] == "category":
        columns[column["name"]] = rng.choice(column["allowed"], size=rows)
    else:
        values = rng.uniform(column["min"], column["max"], size=rows)
        columns[column["name"]] = np.round(values) if column["type"] == "int" else values
pd.DataFrame(columns).to_csv(path, index=False, float_format="%.6g")
"""


def timed_monitor(project: Path, batch: Path, max_rows: int | None) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) and exit code of one `monitor --data` process."""
    env = {**os.environ}
    env.pop("VIRTUAL_ENV", None)
    if max_rows is not None:
        env["MY_ML_SERVICE_MONITOR__MAX_ROWS"] = str(max_rows)
    command = [str(project / ".venv/bin/my_ml_service"), "monitor", "--data", str(batch)]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):  # 3: the uniform rows drift, as they should
        errors = process.stderr.read().decode() if process.stderr else ""
        sys.exit(f"monitor failed (exit {code}) on {batch}:\n{errors}")
    return elapsed, usage.ru_maxrss / 1024, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per cell (median)")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    project = prepare_project(work, "default", None)
    python = str(project / ".venv/bin/python")
    batches = {}
    for rows in SIZES:
        batches[rows] = work / f"batch-{rows}.csv"
        run([python, "-c", GENERATE_PROGRAM, str(rows), str(batches[rows])], project)
    # Warm the page cache and bytecode once.
    timed_monitor(project, batches[SIZES[0]], None)
    cells: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for _ in range(arguments.runs):
        for rows in SIZES:
            variants: list[tuple[str, int | None]] = [("sampled", None)]
            if rows > SIZES[1]:
                variants.append(("every row", rows))
            for label, max_rows in variants:
                seconds, peak_mb, _ = timed_monitor(project, batches[rows], max_rows)
                cells.setdefault((rows, label), []).append((seconds, peak_mb))
    print(f"machine: {os.cpu_count()} cores; `monitor --data`, median of {arguments.runs} runs\n")
    print("| rows | window checked | time | peak memory |")
    print("|---|---|---|---|")
    for (rows, label), samples in cells.items():
        seconds = statistics.median(sample[0] for sample in samples)
        peak = statistics.median(sample[1] for sample in samples)
        checked = (
            f"{min(rows, 100_000):,} (sampled)"
            if label == "sampled" and rows > 100_000
            else f"{rows:,}"
        )
        print(f"| {rows:,} | {checked} | {seconds:.1f} s | {peak:.0f} MB |")
    print(f"\nwork folder: {work}")


if __name__ == "__main__":
    main()
