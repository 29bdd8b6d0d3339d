"""Each way data breaks its contract is caught by the gate, with the column and row count named."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.contract import (
    Contract,
)
from {{ cookiecutter.package_name }}.settings import (
    Settings,
)
from {{ cookiecutter.package_name }}.tabular import (
    DataFileError,
)
from {{ cookiecutter.package_name }}.validate import (
    ValidationOutcome,
    format_outcome,
    validate_file,
)

Corruption = Callable[[pd.DataFrame, Contract], pd.DataFrame]


def first_numeric(contract: Contract) -> str:
    return next(column.name for column in contract.features if column.is_numeric)


def drop_column(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    return frame.drop(columns=[first_numeric(contract)])


def text_in_numbers(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    frame = frame.astype({first_numeric(contract): object})
    frame.loc[frame.index[[3, 7]], first_numeric(contract)] = "twelve"
    return frame


def out_of_range(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    column = next(c for c in contract.features if c.max is not None)
    assert column.max is not None
    frame.loc[frame.index[:3], column.name] = column.max * 10 + 1
    return frame


def nulls(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Blanks where the contract forbids them: a feature's, or the target's if all may be null."""
    required = next((column for column in contract.features if not column.nullable), None)
    name = contract.target.name if required is None else required.name
    frame.loc[frame.index[:4], name] = None
    return frame


def unknown_target(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    if contract.target.allowed is None:  # regression: a target below its floor
        assert contract.target.min is not None
        frame.loc[frame.index[:2], contract.target.name] = contract.target.min - 1000
    else:
        frame = frame.astype({contract.target.name: object})
        frame.loc[frame.index[:2], contract.target.name] = "unknown"
    return frame


def too_few_rows(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    return frame.head(5)


def run_gate(
    corrupt: Corruption,
    sample: pd.DataFrame,
    contract: Contract,
    settings: Settings,
    tmp_path: Path,
) -> ValidationOutcome:
    path = tmp_path / "corrupted.csv"
    corrupt(sample.copy(), contract).to_csv(path, index=False)
    return validate_file(path, contract, settings.validation.min_rows, tmp_path / "reports")


@pytest.mark.parametrize(
    ("corrupt", "check", "problem"),
    [
        (drop_column, "expect_column_to_exist", "column is missing"),
        (text_in_numbers, "expect_column_values_to_be_in_type_list", "2 of {rows} rows are not"),
        (out_of_range, "expect_column_values_to_be_between", "3 of {rows} rows are outside"),
        (nulls, "expect_column_values_to_not_be_null", "4 of {rows} rows are null"),
        (
            too_few_rows,
            "expect_table_row_count_to_be_between",
            "has 5 rows; at least {min_rows} are required (validation.min_rows); fix: supply more",
        ),
    ],
    ids=["missing-column", "wrong-type", "out-of-range", "nulls", "too-few-rows"],
)
def test_corruption_fails_with_the_right_message(
    corrupt: Corruption,
    check: str,
    problem: str,
    sample: pd.DataFrame,
    contract: Contract,
    settings: Settings,
    tmp_path: Path,
) -> None:
    outcome = run_gate(corrupt, sample, contract, settings, tmp_path)
    assert not outcome.success
    failure = next(f for f in outcome.failures if f.check == check)
    assert problem.format(rows=outcome.rows, min_rows=settings.validation.min_rows) in (
        failure.problem
    )
    assert failure.problem in format_outcome(outcome)


def test_wrong_type_points_at_the_bad_values(
    sample: pd.DataFrame, contract: Contract, settings: Settings, tmp_path: Path
) -> None:
    outcome = run_gate(text_in_numbers, sample, contract, settings, tmp_path)
    (failure,) = outcome.failures  # the range check on the same column is not a second failure
    assert failure.column == first_numeric(contract)
    assert failure.unexpected_rows == 2
    assert failure.examples == ["twelve", "twelve"]


def test_a_huge_bad_value_is_cut_in_the_summary(
    sample: pd.DataFrame, contract: Contract, settings: Settings, tmp_path: Path
) -> None:
    """The summary is one line per failure: a 1 MB cell is quoted cut, not whole."""

    def huge(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
        frame = frame.astype({first_numeric(contract): object})
        frame.loc[frame.index[0], first_numeric(contract)] = "x" * 1_000_000
        return frame

    summary = format_outcome(run_gate(huge, sample, contract, settings, tmp_path))
    assert "'xxxxxxxx" in summary
    assert max(len(line) for line in summary.splitlines()) < 500


def test_target_outside_the_contract_is_caught(
    sample: pd.DataFrame, contract: Contract, settings: Settings, tmp_path: Path
) -> None:
    outcome = run_gate(unknown_target, sample, contract, settings, tmp_path)
    assert [failure.column for failure in outcome.failures] == [contract.target.name]
    assert outcome.failures[0].unexpected_rows == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "file is empty"), (b"\x00\x01\x02binary", "not a CSV file")],
    ids=["empty-file", "non-csv"],
)
def test_unreadable_file_is_rejected_before_the_suite(
    content: bytes, message: str, contract: Contract, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "broken.csv"
    path.write_bytes(content)
    with pytest.raises(DataFileError, match=message):
        validate_file(path, contract, settings.validation.min_rows, tmp_path / "reports")
    assert not (tmp_path / "reports").exists()
