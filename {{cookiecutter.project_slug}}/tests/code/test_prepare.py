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
