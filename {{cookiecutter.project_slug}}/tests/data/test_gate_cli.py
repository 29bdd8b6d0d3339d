"""The `validate` command is a gate: broken data exits 1 with a readable summary, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from {{ cookiecutter.package_name }}.contract import (
    Contract,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_broken_data_stops_the_pipeline(
    sample: pd.DataFrame, contract: Contract, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.csv"
    sample.drop(columns=[contract.features[0].name]).to_csv(broken, index=False)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "{{ cookiecutter.package_name }}",
            "validate",
            "--data",
            str(broken),
            "--report-dir",
            str(tmp_path / "reports"),
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        check=False,
        timeout=300,
    )
    assert result.returncode == 1
    assert "error: data validation failed" in result.stderr
    assert f"column '{contract.features[0].name}': column is missing" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "reports" / "validation.json").is_file()
