"""Command `profile`: propose a data contract from any CSV, for a human to review and edit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .contract import Column, ColumnType, Contract
from .errors import ProjectError
from .row_checks import shown
from .tabular import truth_values

# Integer columns with at most this many distinct values are proposed as categories (codes).
MAX_INTEGER_CODES = 10
# Text columns with more distinct values than this are free text, which the contract cannot hold.
MAX_CATEGORIES = 50
# A column whose values are at least this share of numbers is numeric: the rest are typos.
MIN_NUMBER_SHARE = 0.9


def _round_outward(value: float, *, up: bool) -> float:
    """Round to 3 significant digits, away from the data, so observed values stay in range."""
    if value == 0 or not math.isfinite(value):
        return value
    step = 10 ** (math.floor(math.log10(abs(value))) - 2)
    rounded = (math.ceil if up else math.floor)(value / step) * step
    return float(f"{rounded:.12g}")


def _numeric_range(values: pd.Series, margin: float, *, whole: bool) -> tuple[float, float]:
    low, high = float(values.min()), float(values.max())
    pad = (high - low) * margin
    lower = low - pad
    if low >= 0:  # a quantity that is never negative stays so
        lower = max(lower, 0.0)
    lower, upper = _round_outward(lower, up=False), _round_outward(high + pad, up=True)
    return (float(math.floor(lower)), float(math.ceil(upper))) if whole else (lower, upper)


def _finite_numbers(name: str, present: pd.Series) -> tuple[pd.Series | None, str]:
    """The column's finite numbers when nearly all its values are; why the others do not count.

    A few typos ("1,5", "1e400", "inf") must not turn a numeric feature into free text, nor an
    infinity into its range: the range comes from the finite numbers, and the warning names the
    others, which `validate` will refuse until they are fixed. None: not a numeric column.
    """
    if truth_values(present).any():
        return None, ""  # True/False (with blanks, read as objects) are categories, not 1/0
    parsed = pd.to_numeric(present, errors="coerce").astype(float)
    finite = np.isfinite(parsed)
    if finite.sum() < MIN_NUMBER_SHARE * len(present):
        return None, ""
    others = present[~finite]
    if others.empty:
        return parsed, ""
    return parsed[finite], (
        f"{name}: {len(others)} of {len(present)} values are not finite numbers (first: "
        f"{shown(others.iloc[0])}); proposed from the others, so `validate` refuses those "
        "rows until they are fixed"
    )


def _whole_numbers(numbers: pd.Series) -> bool:
    return bool((numbers == numbers.round()).all())


def propose_column(name: str, values: pd.Series, margin: float) -> tuple[Column | None, str]:
    """A contract entry for one column (None for free text or an empty column), and a warning."""
    nullable = bool(values.isna().any())
    present = values.dropna()
    if present.empty:
        return None, f"left out {name}: empty, which a contract cannot describe"
    numbers, warning = _finite_numbers(name, present)
    few_codes = (
        numbers is not None and _whole_numbers(numbers) and numbers.nunique() <= MAX_INTEGER_CODES
    )
    # Codes written beside a few others ("1", "2", "U"): the others are codes too.
    if numbers is None or (few_codes and warning and present.dtype == object):
        distinct = sorted(present.astype(str).unique())
        if len(distinct) > MAX_CATEGORIES:
            return None, f"left out {name}: free text, which a contract cannot describe"
        return Column(name=name, type="category", nullable=nullable, allowed=distinct), ""
    # Nulls make pandas read whole numbers as floats, so whole floats count as integers.
    is_integer = _whole_numbers(numbers)
    if few_codes:
        # 3.0 (a whole number read as a float beside a blank) is the code "3".
        allowed = [str(int(code)) for code in sorted(numbers.unique())]
        return Column(name=name, type="category", nullable=nullable, allowed=allowed), warning
    column_type: ColumnType = "int" if is_integer else "float"
    low, high = _numeric_range(numbers, margin, whole=is_integer)
    return Column(name=name, type=column_type, nullable=nullable, min=low, max=high), warning


def propose_contract(
    frame: pd.DataFrame, target: str, name: str, margin: float = 0.1
) -> tuple[Contract, list[str]]:
    """Propose a contract for `frame`, and warnings: the columns left out, values not counted."""
    if target not in frame.columns:
        found = ", ".join(map(str, frame.columns[:5]))
        raise ProjectError(f"target column {target!r} is not in the data (columns: {found}, ...)")
    if margin < 0:
        raise ProjectError(
            f"margin {margin} is negative; fix: use 0 or more (0.1 = 10% of the range)"
        )
    warnings: list[str] = []
    columns: dict[str, Column] = {}
    for column_name in map(str, frame.columns):
        proposed, warning = propose_column(column_name, frame[column_name], margin)
        if warning:
            warnings.append(warning)
        if proposed is not None:
            columns[column_name] = proposed
    if target not in columns:
        raise ProjectError(f"target column {target!r} is free text or empty; it cannot be a target")
    features = [column for column_name, column in columns.items() if column_name != target]
    if not features:
        raise ProjectError("no usable feature columns: every other column is free text or empty")
    # Columns left out stay in the CSV: the proposal must still validate the file it came from.
    # Rows without a label are left out by `prepare`; the target itself is never null.
    labelled = columns[target].model_copy(update={"nullable": False})
    left_out = len(columns) < len(frame.columns)
    contract = Contract(name=name, target=labelled, features=features, allow_extra_columns=left_out)
    return contract, warnings
