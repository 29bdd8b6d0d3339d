"""The template's own Python (answer rules, tests, hooks, scripts, benchmarks) is linted
and type-checked.

The generated project checks its own code (its `make lint typecheck`, run by test_project.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TEMPLATE

TOOLS = Path(sys.executable).parent
# Named, not ".": ruff would read the template project's (Jinja) pyproject.toml too.
CODE = ["template_answers.py", "tests", "hooks", "scripts", "benchmarks"]
CHECKS = {
    "ruff check": [str(TOOLS / "ruff"), "check", *CODE],
    "ruff format": [str(TOOLS / "ruff"), "format", "--check", *CODE],
    "mypy": [str(TOOLS / "mypy")],  # files from pyproject.toml
}


@pytest.mark.parametrize("check", list(CHECKS))
def test_template_code_is_clean(check: str) -> None:
    result = subprocess.run(
        CHECKS[check], cwd=TEMPLATE, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{check}:\n{result.stdout}\n{result.stderr}"
