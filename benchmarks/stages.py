"""Each pipeline stage and `monitor`, timed at two template commits side by side
(`make bench-stages BASE=<commit>`).

Bakes the default project from the working tree and runs its pipeline once, then bakes the
same project from BASE and keeps only its package code. Every command then runs as a user runs
it (a new process), alternating between the two package trees in each round (PYTHONPATH puts
BASE's package first), so both see the same machine, data, registry and locked environment:
what differs is the package's code, nothing else. Cells are medians of the rounds.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from serving import TEMPLATE, bake, prepare_project

PACKAGE = "my_ml_service"
# The pipeline's stages in order, then the drift check on the held-back batch's features.
COMMANDS = {
    "prepare": ["prepare"],
    "validate": ["validate", "--publish"],
    "train": ["train"],
    "evaluate": ["evaluate"],
    "promote": ["promote"],
    "monitor": ["monitor", "--data", "batch.csv"],
}


def base_package(commit: str, work: Path) -> Path:
    """The package folder of a project baked from the template at `commit`."""
    tree = work / "base-template"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "archive", commit], cwd=TEMPLATE, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return bake(tree, work / "base") / "src"


def write_batch(project: Path) -> None:
    """The batch `monitor --data` checks: the held-back rows' features (the target dropped)."""
    target = yaml.safe_load((project / "contract.yaml").read_text())["target"]["name"]
    with (project / "data/prepared/production.csv").open(newline="") as source:
        rows = list(csv.DictReader(source))
    with (project / "batch.csv").open("w", newline="") as batch:
        features = [name for name in rows[0] if name != target]
        writer = csv.DictWriter(batch, features, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def timed(project: Path, command: list[str], package_path: Path | None) -> float:
    environment = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    if package_path is not None:
        environment["PYTHONPATH"] = str(package_path)
    started = time.perf_counter()
    result = subprocess.run(
        [str(project / ".venv/bin" / PACKAGE), *command],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode not in (0, 3):  # 3: monitor found drift, a verdict, not a failure
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="template commit to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        project = prepare_project(work, "head", None)
        write_batch(project)
        base = base_package(args.base, work)
        sides = {"base": base, "head": None}
        times: dict[str, dict[str, list[float]]] = {
            name: {"base": [], "head": []} for name in COMMANDS
        }
        for round_ in range(args.rounds):
            order = ["base", "head"] if round_ % 2 == 0 else ["head", "base"]
            for name, command in COMMANDS.items():
                for side in order:
                    times[name][side].append(timed(project, command, sides[side]))
        print(f"| command | {args.base} | working tree | ratio |\n|---|---|---|---|")
        for name, command in COMMANDS.items():
            before = statistics.median(times[name]["base"])
            after = statistics.median(times[name]["head"])
            shown = " ".join(command)
            print(f"| `{shown}` | {before:.1f} s | {after:.1f} s | {before / after:.2f}x |")


if __name__ == "__main__":
    main()
