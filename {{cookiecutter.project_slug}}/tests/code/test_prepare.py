"""The production hold-out is deterministic, disjoint and keeps class shares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.contract import (
    Contract,
)
from {{ cookiecutter.package_name }}.errors import (
    ProjectError,
)
from {{ cookiecutter.package_name }}.prepare import (
    load_source,
    publish_split,
    run_prepare,
    split_off,
)
from {{ cookiecutter.package_name }}.settings import (
    Settings,
)


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {"x": rng.normal(size=500), "label": np.where(np.arange(500) < 100, "rare", "common")}
    )


def test_split_is_deterministic(frame: pd.DataFrame) -> None:
    first = split_off(frame, 0.2, seed=7, stratify_by="label")
    second = split_off(frame, 0.2, seed=7, stratify_by="label")
    other_seed = split_off(frame, 0.2, seed=8, stratify_by="label")
    pd.testing.assert_frame_equal(first[1], second[1])
    assert not first[1].index.equals(other_seed[1].index)


def test_split_is_disjoint_and_complete(frame: pd.DataFrame) -> None:
    train, production = split_off(frame, 0.2, seed=0, stratify_by=None)
    assert len(production) == 100
    assert set(train.index).isdisjoint(production.index)
    assert len(train) + len(production) == len(frame)


def test_stratified_split_keeps_class_shares(frame: pd.DataFrame) -> None:
    _, production = split_off(frame, 0.2, seed=0, stratify_by="label")
    assert (production["label"] == "rare").mean() == pytest.approx(0.2)


def test_unknown_sklearn_dataset_is_named() -> None:
    with pytest.raises(ProjectError, match=r"data\.source 'sklearn:iris3' is unknown"):
        load_source("sklearn:iris3")


def test_the_split_is_published_only_after_the_gate(
    settings: Settings, contract: Contract, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prepare stages the split; data the gate refuses never becomes the prepared data."""
    monkeypatch.chdir(tmp_path)
    target = contract.target.name
    accepted = run_prepare(settings, target)
    data = settings.data
    assert not data.train_path.exists()
    assert not data.production_path.exists()
    publish_split(settings)  # what `validate` does once the data passed
    assert len(pd.read_csv(data.train_path)) == accepted.train_rows
    before = data.production_path.read_bytes()
    smaller = settings.model_copy(
        update={"data": data.model_copy(update={"production_fraction": 0.5})}
    )
    run_prepare(smaller, target)  # new data, not yet through the gate
    assert data.production_path.read_bytes() == before


def test_a_class_too_rare_to_split_is_named() -> None:
    frame = pd.DataFrame({"x": range(50), "label": ["common"] * 49 + ["rare"]})
    with pytest.raises(ProjectError, match="class 'rare' of label has 1 row"):
        split_off(frame, 0.2, seed=0, stratify_by="label")
