"""How often `monitor` alerts on clean and on drifted batches, on both samples (`make bench-drift`).

Bakes a project per task, installs it, and runs `drift_probe.py` in its environment: for each of
SEEDS seeds the sample is re-split (different held-back rows each time), a champion is fitted,
and its held-back rows, each once, form a clean batch and one batch of each drift kind (the 3
most important numeric features shifted by 0.5 and 1 standard deviation or rescaled x1.5, the
two most common categories swapped, 30% of labels flipped). Prints a markdown table: the share
of batches that alerted (false alarms for clean batches, detection for the rest) and which rule
fired. The targets: at most 2% false alarms, at least 95% detection of 1-std shifts and flips.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from serving import UV, run

TEMPLATE = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).with_name("drift_probe.py")
TASKS = {"classification": "breast cancer", "regression": "diabetes"}


def baked(work: Path, task: str) -> Path:
    out = work / task
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "-f", "-o", str(out)]
    run([*command, str(TEMPLATE), f"task={task}"], TEMPLATE)
    project = out / "my-ml-service"
    run(["make", "setup", f"UV={UV}"], project)
    return project


def probe(project: Path, seeds: int, windows: list[int]) -> dict[str, Any]:
    python = str(project / ".venv/bin/python")
    # One OpenMP thread: gradient boosting's thread barriers stall for whole time slices on a
    # busy machine (a fit took minutes instead of a second beside other work).
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [python, str(PROBE), "my_ml_service", str(seeds), *map(str, windows)],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        sys.exit(f"probe failed in {project}:\n{completed.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| sample | batch | rows | alerted | rate | rules that fired |",
        "|---|---|---|---|---|---|",
    ]
    for task, result in results.items():
        for kind, entry in result["kinds"].items():
            batches, alerts = int(entry["batches"]), int(entry["alerts"])
            rules = ", ".join(f"{rule} {count}" for rule, count in entry["rules"].items()) or "-"
            lines.append(
                f"| {TASKS[task]} | {kind} | {entry['rows']} | {alerts} of {batches} "
                f"| {alerts / batches:.0%} | {rules} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--work", type=Path, default=TEMPLATE / "build/bench-drift")
    parser.add_argument(
        "--windows",
        type=int,
        nargs="*",
        default=[],
        help="only clean windows of these sizes (what monitor.min_rows should be)",
    )
    options = parser.parse_args()
    results = {}
    for task in TASKS:
        project = baked(options.work.resolve(), task)
        results[task] = probe(project, options.seeds, options.windows)
        print(f"{task}: {results[task]['seconds']:.0f} s", file=sys.stderr)
    print(table(results))


if __name__ == "__main__":
    main()
