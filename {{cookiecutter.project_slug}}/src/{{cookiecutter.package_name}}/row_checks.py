"""The data contract applied row by row to a table: which rows the model may score, and why not.

The API refuses a JSON record that breaks the contract (`api/schemas.py`, pydantic); batch
scoring applies the same rules to a table, vectorised per column, so a file of a million rows
is checked at pandas speed. A test feeds the same values to both and expects the same verdicts.
Values come as a CSV or Parquet reader gives them: numbers may be text, codes may be floats.
"""

from __future__ import annotations

import re
from collections.abc import Hashable

import numpy as np
import pandas as pd

from .contract import Column, Contract
from .tabular import truth_values

# Problems listed per row before "and N more": a reason stays readable in a reject file.
MAX_PROBLEMS = 3
SHOWN_CHARACTERS = 40  # of a bad value, in its reason
SHOWN_CODES = 8  # allowed codes named in a reason
_WHOLE_FLOAT_TEXT = re.compile(r"^(-?\d+)\.0*$")


def shown(value: object) -> str:
    """A value as a message quotes it: text in quotes, cut to SHOWN_CHARACTERS."""
    text = repr(value) if isinstance(value, str) else str(value)
    if len(text) <= SHOWN_CHARACTERS:
        return text
    return text[: SHOWN_CHARACTERS - 3] + "..."


def _not_numbers(values: pd.Series) -> pd.Series:
    """Which values are True/False or times, which the API refuses as numbers.

    pandas would turn them into 1/0 and nanoseconds.
    """
    if values.dtype.kind in "mM":
        return pd.Series(True, index=values.index)
    return truth_values(values)


def _numbers(column: Column, values: pd.Series) -> tuple[pd.Series, dict[Hashable, str]]:
    """`values` as floats, and each bad row's problem."""
    present = values.notna()
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    problems: dict[Hashable, str] = {}

    def flag(mask: pd.Series, message: str) -> None:
        for row, value in values[mask].items():
            problems.setdefault(row, f"{column.name}: {shown(value)} {message}")

    flag(present & (numbers.isna() | _not_numbers(values)), "is not a number")
    flag(numbers.abs() == np.inf, "is not a finite number")
    if column.type == "int":
        flag(numbers.notna() & (numbers % 1 != 0), "is not a whole number")
    if column.min is not None:
        flag(numbers < column.min, f"is below the contract's minimum {column.min:g}")
    if column.max is not None:
        flag(numbers > column.max, f"is above the contract's maximum {column.max:g}")
    return numbers, problems


def _codes(column: Column, values: pd.Series) -> tuple[pd.Series, dict[Hashable, str]]:
    """`values` as category text (a code read as 3.0 is "3"), and each bad row's problem."""
    allowed = list(column.allowed or [])
    present = values.notna()
    text = values.astype(object).where(~present, values.astype(str))
    whole = text.where(~text.isin(allowed)).str.extract(_WHOLE_FLOAT_TEXT, expand=False)
    text = text.where(whole.isna() | ~whole.isin(allowed), whole)
    codes = ", ".join(map(repr, allowed[:SHOWN_CODES]))
    codes += ", ..." if len(allowed) > SHOWN_CODES else ""
    bad = present & ~text.isin(allowed)
    problems = {
        row: f"{column.name}: {shown(value)} is not one of {codes}"
        for row, value in values[bad].items()
    }
    return text, problems


def label_problems(labels: pd.Series, contract: Contract) -> dict[Hashable, str]:
    """Each label's problem: not a class of the contract, or not a number.

    A number outside the target's training range is no problem: a shifted target is what
    monitoring with labels exists to measure.
    """
    target = contract.target.model_copy(update={"min": None, "max": None})
    present = labels.dropna()
    return (_numbers if target.is_numeric else _codes)(target, present)[1]


def checked_rows(frame: pd.DataFrame, contract: Contract) -> tuple[pd.DataFrame, pd.Series]:
    """The contract's features of `frame`, typed as the model reads them, and each row's problems.

    The problems are a text per row of the frame's index ("" for a row the model may score);
    the frame must hold every feature (the caller names a missing one as a file problem).
    """
    features: dict[str, pd.Series] = {}
    found: dict[Hashable, list[str]] = {}
    for column in contract.features:
        values = frame[column.name]
        typed, problems = (_numbers if column.is_numeric else _codes)(column, values)
        if not column.nullable:
            for row in values.index[values.isna()]:
                problems.setdefault(row, f"{column.name}: missing (the contract needs a value)")
        features[column.name] = typed
        for row, problem in problems.items():
            found.setdefault(row, []).append(problem)
    joined = {row: _reason(listed) for row, listed in found.items()}
    reasons = pd.Series([joined.get(row, "") for row in frame.index], index=frame.index)
    return pd.DataFrame(features, index=frame.index), reasons.astype(object)


def _reason(problems: list[str]) -> str:
    more = len(problems) - MAX_PROBLEMS
    return "; ".join(problems[:MAX_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")
