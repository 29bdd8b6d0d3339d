"""Baking helpers shared by the template tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
TEMPLATE_PROJECT = TEMPLATE / "{{cookiecutter.project_slug}}"

# Rotate options instead of multiplying them: every value of every option appears at least once.
ROTATIONS: list[dict[str, str]] = [
    {},
    {"python_version": "3.12", "task": "regression", "license": "Apache-2.0"},
    {"python_version": "3.13", "task": "classification", "license": "BSD-3-Clause"},
    {"project_name": "Churn Predictor", "task": "regression", "license": "Proprietary"},
]


def rotation_id(answers: dict[str, str]) -> str:
    return "-".join(answers.values()) or "defaults"


def bake(output_dir: Path, **answers: Any) -> Path:
    """Bake the template with `answers` on top of the defaults; return the project folder."""
    return Path(
        cookiecutter(str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(output_dir))
    )


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
