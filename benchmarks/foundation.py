"""Time bake, CLI --help, and the DVC pipeline (prepare -> ... -> promote) cold and as a no-op.

Run `make bench`. Measurements that are compared are interleaved in one run (this machine
is noisy), and every figure is a median. Prints a markdown table for README.md.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
UV = os.environ.get("UV") or shutil.which("uv") or "uv"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
PIPELINE_ROUNDS = int(os.environ.get("BENCH_PIPELINE_ROUNDS", "3"))


def timed(command: Sequence[str], cwd: Path | None = None) -> float:
    env = {**os.environ}
    env.pop("VIRTUAL_ENV", None)
    start = time.perf_counter()
    result = subprocess.run(
        list(command), cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return elapsed


def interleaved(cases: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Median seconds per case, running the cases in turn so drift hits them alike."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            samples[name].append(case())
    return {name: statistics.median(values) for name, values in samples.items()}


def bake(output_dir: Path) -> float:
    return timed(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            "--no-input",
            "-f",
            "-o",
            str(output_dir),
            str(TEMPLATE),
        ]
    )


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    rows: list[tuple[str, str, str]] = []

    bake_s = interleaved({"bake": lambda: bake(work / "bakes")}, ROUNDS)["bake"]
    rows.append(("bake the defaults (`cookiecutter --no-input`)", f"{bake_s:.2f} s", ""))

    project = Path(work / "bakes" / "my-ml-service")
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    sync_s = timed([UV, "sync", "--locked"], project)
    rows.append(("`uv sync --locked`, fresh venv, warm uv cache", f"{sync_s:.1f} s", ""))

    python = str(project / ".venv" / "bin" / "python")
    cli = str(project / ".venv" / "bin" / "my_ml_service")
    startup = interleaved(
        {
            "help": lambda: timed([cli, "--help"], project),
            "eager": lambda: timed(
                [python, "-c", "import great_expectations, sklearn, pandas"], project
            ),
            "python": lambda: timed([python, "-c", "pass"], project),
        },
        ROUNDS,
    )
    rows.append(
        (
            "`my_ml_service --help`",
            f"{startup['help']:.2f} s",
            f"{startup['eager'] / startup['help']:.0f}x faster than importing its stack eagerly "
            f"({startup['eager']:.1f} s); bare interpreter {startup['python']:.2f} s",
        )
    )

    dvc = [UV, "run", "--locked", "dvc"]  # as `make pipeline` runs it: stages need the venv on PATH

    def cold() -> float:
        # A cold start: no data, reports, tracking store, registry or exported champion.
        for output in (
            "data/raw",
            "data/prepared",
            "reports",
            "models",
            "mlartifacts",
            "mlflow.db",
            "dvc.lock",
        ):
            path = project / output
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        return timed([*dvc, "repro"], project)

    pipeline = interleaved(
        {"cold": cold, "noop": lambda: timed([*dvc, "repro"], project)}, PIPELINE_ROUNDS
    )
    rows.append(
        (
            "`dvc repro` cold: prepare, validate, train, evaluate, promote",
            f"{pipeline['cold']:.1f} s",
            "",
        )
    )
    rows.append(
        (
            "`dvc repro` no-op (nothing changed)",
            f"{pipeline['noop']:.1f} s",
            f"{pipeline['cold'] / pipeline['noop']:.1f}x less than cold",
        )
    )
    validate = interleaved({"validate": lambda: timed([cli, "validate"], project)}, PIPELINE_ROUNDS)
    rows.append(
        (
            "`my_ml_service validate` alone (GX import + 126 checks)",
            f"{validate['validate']:.1f} s",
            "",
        )
    )

    print(
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"medians of {ROUNDS} (pipeline: {PIPELINE_ROUNDS}) runs.\n"
    )
    print("| measurement | median | comparison |\n|---|---|---|")
    for name, value, note in rows:
        print(f"| {name} | {value} | {note} |")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
