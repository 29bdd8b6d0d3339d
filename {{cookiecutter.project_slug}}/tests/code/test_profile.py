"""`profile` proposes a contract that describes the data it was given."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.errors import (
    ProjectError,
)
from {{ cookiecutter.package_name }}.profile import (
    MAX_CATEGORIES,
    propose_contract,
)


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = 200
    return pd.DataFrame(
        {
            "length": rng.normal(50, 5, rows),
            "visits": rng.integers(0, 400, rows),
            "grade": rng.integers(1, 4, rows),
            "colour": rng.choice(["red", "green"], rows),
            "comment": [f"free text {i}" for i in range(rows)],
            "weight": np.where(np.arange(rows) % 10 == 0, np.nan, rng.uniform(1, 2, rows)),
            "churned": rng.choice(["no", "yes"], rows),
        }
    )


def test_types_are_inferred(frame: pd.DataFrame) -> None:
    contract, _ = propose_contract(frame, target="churned", name="toy")
    types = {column.name: column.type for column in contract.columns}
    assert types == {
        "length": "float",
        "visits": "int",
        "grade": "category",  # few integer codes
        "colour": "category",
        "weight": "float",
        "churned": "category",
    }
    assert contract.target.name == "churned"
    assert contract.target.allowed == ["no", "yes"]


def test_free_text_is_left_out_with_a_reason(frame: pd.DataFrame) -> None:
    contract, warnings = propose_contract(frame, target="churned", name="toy")
    assert "comment" not in contract.feature_names
    assert warnings == ["left out comment: free text, which a contract cannot describe"]
    assert len(frame["comment"].unique()) > MAX_CATEGORIES
    # The comment column stays in the CSV: the proposal still accepts the file it came from.
    assert contract.allow_extra_columns


@pytest.mark.parametrize("typo", ["1,5", "1e400", "inf", "about 2"])
def test_a_typo_in_a_numeric_column_is_named_not_taken_for_text_or_range(
    frame: pd.DataFrame, typo: str
) -> None:
    """One bad cell used to turn a feature into free text (left out) or its max into inf."""
    frame = frame.astype({"length": object})
    frame.loc[7, "length"] = typo
    contract, warnings = propose_contract(frame, target="churned", name="toy")
    [length] = [column for column in contract.features if column.name == "length"]
    assert length.type == "float"
    numbers = pd.to_numeric(frame["length"].drop(index=7))
    assert length.min is not None
    assert length.max is not None
    assert length.min <= numbers.min() <= numbers.max() <= length.max < 1e6
    assert warnings[0].startswith(f"length: 1 of {len(frame)} values are not finite numbers")
    assert repr(typo) in warnings[0]


def test_codes_beside_a_blank_are_proposed_as_whole_numbers(frame: pd.DataFrame) -> None:
    frame["grade"] = frame["grade"].astype(float)
    frame.loc[::9, "grade"] = np.nan  # as pandas reads integer codes with a blank: 3.0
    contract, _ = propose_contract(frame, target="churned", name="toy")
    [grade] = [column for column in contract.features if column.name == "grade"]
    assert grade.allowed == ["1", "2", "3"]
    assert grade.nullable


def test_ranges_cover_the_data_with_margin(frame: pd.DataFrame) -> None:
    contract, _ = propose_contract(frame, target="churned", name="toy", margin=0.1)
    for column in contract.features:
        if column.is_numeric:
            assert column.min is not None
            assert column.max is not None
            values = frame[column.name].dropna()
            assert column.min <= values.min()
            assert column.max >= values.max()
            assert column.max > values.max()  # widened, not just the observed extremes


def test_nullability_follows_the_data(frame: pd.DataFrame) -> None:
    contract, _ = propose_contract(frame, target="churned", name="toy")
    nullable = {column.name for column in contract.columns if column.nullable}
    assert nullable == {"weight"}


def test_never_negative_quantities_keep_a_zero_floor() -> None:
    frame = pd.DataFrame({"x": [0.5, 1.0, 100.0], "y": ["a", "b", "a"]})
    contract, _ = propose_contract(frame, target="y", name="toy", margin=0.5)
    assert contract.features[0].min == 0


def test_unknown_target_is_named(frame: pd.DataFrame) -> None:
    with pytest.raises(ProjectError, match="target column 'label' is not in the data"):
        propose_contract(frame, target="label", name="toy")


def test_true_false_with_blanks_and_codes_beside_a_letter_stay_categories(
    frame: pd.DataFrame,
) -> None:
    """Read with a blank, True/False are objects (not 1/0); codes 1-3 beside "U" are codes."""
    frame["member"] = [True, None, False] * (len(frame) // 3) + [True] * (len(frame) % 3)
    frame["tier"] = (["1", "2", "3"] * len(frame))[: len(frame)]
    frame.loc[::25, "tier"] = "U"
    contract, _ = propose_contract(frame, target="churned", name="toy")
    columns = {column.name: column for column in contract.features}
    assert columns["member"].allowed == ["False", "True"]
    assert columns["tier"].allowed == ["1", "2", "3", "U"]
