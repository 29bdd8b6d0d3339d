"""Row keys and the splits that follow them: stable per row, whatever else is in the data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.contract import Contract
from {{ cookiecutter.package_name }}.errors import (
    ProjectError,
)
from {{ cookiecutter.package_name }}.rows import (
    evaluation_split,
    row_keys,
    split_off,
)
from {{ cookiecutter.package_name }}.settings import Settings

FEATURES = ["x", "colour"]


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "x": rng.normal(size=500),
            "colour": rng.choice(["red", "blue"], size=500),
            "label": np.where(np.arange(500) < 100, "rare", "common"),
        }
    )


def split(frame: pd.DataFrame, seed: int = 0, by: str | None = "label") -> pd.DataFrame:
    return split_off(frame, 0.2, seed, by, FEATURES, "test")[1]


def test_keys_ignore_the_target_types_and_float_noise() -> None:
    one = pd.DataFrame({"x": [1.5, 2.0], "colour": ["3", None], "label": ["a", "b"]})
    same = pd.DataFrame({"x": [1.5 + 1e-12, 2], "colour": [3.0, np.nan], "label": ["b", "a"]})
    other = pd.DataFrame({"x": [1.5001, 2.0], "colour": ["3", "4"], "label": ["a", "b"]})
    assert list(row_keys(one, FEATURES)) == list(row_keys(same, FEATURES))
    assert (row_keys(one, FEATURES) != row_keys(other, FEATURES)).all()


def test_split_is_deterministic_and_seeded(frame: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(split(frame, seed=7), split(frame, seed=7))
    assert not split(frame, seed=7).index.equals(split(frame, seed=8).index)


def test_split_is_disjoint_complete_and_near_the_fraction(frame: pd.DataFrame) -> None:
    kept, held = split_off(frame, 0.2, 0, None, FEATURES, "test")
    assert set(kept.index).isdisjoint(held.index)
    assert len(kept) + len(held) == len(frame)
    assert 70 <= len(held) <= 130  # a hash draw: binomial around 100


def test_stratified_split_keeps_class_shares_roughly(frame: pd.DataFrame) -> None:
    held = split(frame)
    assert 0.1 <= (held["label"] == "rare").mean() <= 0.3


def test_a_row_never_changes_side_when_rows_are_added(frame: pd.DataFrame) -> None:
    """The property retraining relies on: held-out rows stay held out as the pool grows."""
    before = split(frame.iloc[:300])
    grown = split(frame)  # 200 more rows
    assert set(grown.index) & set(range(300)) == set(before.index)


def test_the_held_out_rows_follow_the_data_seed_not_the_model_seed(
    sample: pd.DataFrame, settings: Settings, contract: Contract
) -> None:
    """A challenger trained with another `train.seed` is judged on the champion's held-out rows
    (a seed that re-dealt them put rows the champion was fitted on into the gate's set)."""
    held = evaluation_split(sample, settings, contract)[1].index
    reseeded = settings.model_copy(
        update={"train": settings.train.model_copy(update={"seed": settings.train.seed + 1})}
    )
    assert evaluation_split(sample, reseeded, contract)[1].index.equals(held)
    redealt = settings.model_copy(
        update={"data": settings.data.model_copy(update={"seed": settings.data.seed + 1})}
    )
    assert not evaluation_split(sample, redealt, contract)[1].index.equals(held)


def test_copies_of_a_row_are_always_on_the_same_side(frame: pd.DataFrame) -> None:
    copies = pd.concat([frame, frame.sample(200, random_state=0)], ignore_index=True)
    copies["label"] = copies["label"].where(copies.index < 500, "common")  # relabelled copies
    kept, held = split_off(copies, 0.2, 0, "label", FEATURES, "test")
    assert set(row_keys(kept, FEATURES)).isdisjoint(row_keys(held, FEATURES))


def test_every_class_gets_a_row_on_each_side() -> None:
    frame = pd.DataFrame({"x": range(40), "colour": "red", "label": ["common"] * 37 + ["rare"] * 3})
    kept, held = split_off(frame, 0.2, 0, "label", FEATURES, "test")
    assert set(kept["label"]) == set(held["label"]) == {"common", "rare"}


def test_a_class_too_rare_to_split_is_named() -> None:
    frame = pd.DataFrame({"x": range(50), "colour": "red", "label": ["common"] * 49 + ["rare"]})
    with pytest.raises(ProjectError, match="class 'rare' of label has 1 row"):
        split_off(frame, 0.2, 0, "label", FEATURES, "test")


def test_an_exact_split_keeps_every_class_share(frame: pd.DataFrame) -> None:
    """The production batch: its class mix is the source's, or monitoring sees drift in it."""
    _, held = split_off(frame, 0.2, 0, "label", FEATURES, "test", exact=True)
    assert (held["label"] == "rare").sum() == 20
    assert (held["label"] == "common").sum() == 80
    again = split_off(
        frame.sample(frac=1, random_state=3), 0.2, 0, "label", FEATURES, "test", exact=True
    )
    assert set(again[1].index) == set(held.index)  # by key, not by row order
