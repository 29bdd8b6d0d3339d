"""The bundled sample honours the data contract, checked by the real validation gate."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from {{ cookiecutter.package_name }}.contract import (
    Contract,
)
from {{ cookiecutter.package_name }}.settings import (
    Settings,
)
from {{ cookiecutter.package_name }}.validate import (
    validate_file,
)


def test_contract_describes_exactly_the_sample_columns(
    sample: pd.DataFrame, contract: Contract
) -> None:
    declared = {column.name for column in contract.columns}
    assert declared <= set(sample.columns), "the contract names columns the data lacks"
    if not contract.allow_extra_columns:
        assert set(sample.columns) == declared


def test_task_matches_the_target_type(settings: Settings, contract: Contract) -> None:
    expected = "category" if settings.task.name == "classification" else "float"
    assert contract.target.type == expected


def test_sample_passes_the_gate(
    sample_csv: Path, contract: Contract, settings: Settings, tmp_path: Path
) -> None:
    report_dir = tmp_path / "reports"
    outcome = validate_file(sample_csv, contract, settings.validation.min_rows, report_dir)
    assert outcome.success, outcome.failures
    assert outcome.rows >= settings.validation.min_rows
    # Table shape, plus at least existence, nulls and type for every column.
    assert outcome.evaluated >= 2 + 3 * len(contract.columns)
    assert (report_dir / "validation.json").is_file()
    page = (report_dir / "validation.html").read_text()
    assert "all checks passed" in page
    assert page.count("<tr>") == 1 + outcome.evaluated  # a row per check
    assert "http" not in page  # self-contained: nothing to fetch
