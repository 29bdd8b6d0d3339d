"""Baking helpers shared by the template tests."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
TEMPLATE_PROJECT = TEMPLATE / "{{cookiecutter.project_slug}}"
CHOICES: dict[str, list[str]] = {
    name: values
    for name, values in json.loads((TEMPLATE / "cookiecutter.json").read_text()).items()
    if isinstance(values, list) and not name.startswith("_")
}


def pytest_configure(config: pytest.Config) -> None:
    """One OpenMP thread for every baked project's commands.

    `make test` runs two projects side by side on two cores; gradient boosting's OpenMP thread
    barriers then stall for whole time slices (a 1 s fit took minutes, and steps timed out).
    """
    del config
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def rotations() -> list[dict[str, str]]:
    """Rotate options instead of multiplying them: every value of every choice appears once.

    Rotation i answers each choice with its i-th value (wrapping); the first is all defaults.
    The last also renames the project, so derived names are tested off their defaults.
    """
    count = max(len(values) for values in CHOICES.values())
    result = [
        {name: values[i % len(values)] for name, values in CHOICES.items() if i % len(values)}
        for i in range(count)
    ]
    result[-1]["project_name"] = "Churn Predictor"
    return result


ROTATIONS = rotations()


def tasks_grouped(prefix: str) -> list[Any]:
    """Every task as a fixture parameter, each in its own xdist group.

    `make test` runs on two workers; a group stays on one worker, so a module-scoped baked
    project is built once, and two projects build side by side.
    """
    return [
        pytest.param(task, marks=pytest.mark.xdist_group(f"{prefix}-{task}"))
        for task in CHOICES["task"]
    ]


def rotation_id(answers: dict[str, str]) -> str:
    return "-".join(answers.values()) or "defaults"


def bake(output_dir: Path, **answers: Any) -> Path:
    """Bake the template with `answers` on top of the defaults; return the project folder."""
    return Path(
        cookiecutter(
            str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(output_dir)
        )
    )


def run_unchecked(
    command: Sequence[str], cwd: Path, timeout: int = 900
) -> subprocess.CompletedProcess[str]:
    """Run a command in a baked project, outside the template's own virtual environment."""
    env = {**os.environ, "UV_NO_PROGRESS": "1"}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        list(command),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def run(command: Sequence[str], cwd: Path, timeout: int = 900) -> str:
    """Run a command in a baked project; fail the test with its output if it fails."""
    result = run_unchecked(command, cwd, timeout)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout + result.stderr


def git(project: Path, *args: str) -> str:
    """Git in a baked project, with an identity for commits."""
    return run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args], project)


def without_uv() -> dict[str, str]:
    """This environment as on a machine that never had uv: none on PATH, no $UV, no venv."""
    folders = os.environ["PATH"].split(os.pathsep)
    path = [folder for folder in folders if folder and not (Path(folder) / "uv").exists()]
    env = {**os.environ, "PATH": os.pathsep.join(path), "UV_NO_PROGRESS": "1"}
    # The template's Makefile exports its own uv (and make its flags) to every child.
    for name in ("UV", "VIRTUAL_ENV", "MAKEFLAGS", "MAKELEVEL"):
        env.pop(name, None)
    return env


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Poll `url` until it answers; fail the test if the server exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the service did not become ready (exit code {server.poll()})")
            time.sleep(0.2)


def uv_executable() -> str:
    """The uv to drive baked projects with: $UV (set by the Makefile) or the one on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        pytest.fail("uv not found: run the tests with `make test`, which installs it")
    return found


@pytest.fixture(params=ROTATIONS, ids=rotation_id)
def answers(request: pytest.FixtureRequest) -> dict[str, str]:
    return dict(request.param)


@pytest.fixture
def baked(tmp_path: Path, answers: dict[str, str]) -> Path:
    return bake(tmp_path, **answers)
