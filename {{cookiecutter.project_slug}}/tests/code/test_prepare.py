"""prepare: the source, the staged split, and publishing it only after the gate."""

from __future__ import annotations

from pathlib import Path

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
)
from {{ cookiecutter.package_name }}.settings import (
    Settings,
)


def test_unknown_sklearn_dataset_is_named() -> None:
    with pytest.raises(ProjectError, match=r"data\.source 'sklearn:iris3' is unknown"):
        load_source("sklearn:iris3")


def test_the_split_is_published_only_after_the_gate(
    settings: Settings, contract: Contract, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prepare stages the split; data the gate refuses never becomes the prepared data."""
    monkeypatch.chdir(tmp_path)
    accepted = run_prepare(settings, contract)
    data = settings.data
    assert not data.train_path.exists()
    assert not data.production_path.exists()
    publish_split(settings)  # what `validate` does once the data passed
    assert len(pd.read_csv(data.train_path)) == accepted.train_rows
    before = data.production_path.read_bytes()
    smaller = settings.model_copy(
        update={"data": data.model_copy(update={"production_fraction": 0.5})}
    )
    run_prepare(smaller, contract)  # new data, not yet through the gate
    assert data.production_path.read_bytes() == before


def test_labelled_batches_join_a_source_with_columns_outside_the_contract(
    settings: Settings, contract: Contract, sample: pd.DataFrame, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """`profile` leaves free text out of the contract; `retrain` stores the contract's columns
    only. The batch joins the pool with that column blank; a batch lacking a contract column
    is named."""
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "mine.csv"
    sample.assign(comment="free text the contract leaves out").to_csv(source, index=False)
    relaxed = contract.model_copy(update={"allow_extra_columns": True})
    mine = settings.model_copy(
        update={"data": settings.data.model_copy(update={"source": str(source)})}
    )
    alone = run_prepare(mine, relaxed)
    labelled = mine.monitor.labelled_dir
    labelled.mkdir(parents=True)
    batch = sample.head(7)[[column.name for column in contract.columns]]
    batch.to_csv(labelled / "batch-1.csv", index=False)
    joined = run_prepare(mine, relaxed)
    assert joined.train_rows == alone.train_rows + 7
    pool = pd.read_csv(mine.data.staged_dir / mine.data.train_path.name)
    assert pool["comment"].isna().sum() == 7
    batch.drop(columns=contract.feature_names[0]).to_csv(labelled / "batch-2.csv", index=False)
    with pytest.raises(ProjectError, match=r"batch-2\.csv: missing contract columns "):
        run_prepare(mine, relaxed)


def test_rows_without_a_label_are_left_out_and_counted(
    settings: Settings, contract: Contract, sample: pd.DataFrame, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "mine.csv"
    target = contract.target.name
    unlabelled = sample.astype({target: object})
    unlabelled.loc[unlabelled.index[:3], target] = None
    unlabelled.to_csv(source, index=False)
    mine = settings.model_copy(
        update={"data": settings.data.model_copy(update={"source": str(source)})}
    )
    result = run_prepare(mine, contract)
    assert result.unlabelled_rows == 3
    assert result.raw_rows == len(sample) - 3
    raw = pd.read_csv(mine.data.raw_path)
    assert len(raw) == len(sample) - 3
    assert raw[target].notna().all()
