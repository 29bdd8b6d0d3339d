"""Fixtures shared by the code, data and model test families."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.contract import (
    Contract,
    load_contract,
)
from {{ cookiecutter.package_name }}.prepare import (
    load_source,
)
from {{ cookiecutter.package_name }}.settings import (
    Settings,
    load_settings,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The project's real settings, read from its params.yaml."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(PROJECT_ROOT)
        return load_settings()


@pytest.fixture(scope="session")
def contract(settings: Settings) -> Contract:
    """The project's real data contract."""
    return load_contract(PROJECT_ROOT / settings.contract_path)


@pytest.fixture(scope="session")
def sample(settings: Settings) -> pd.DataFrame:
    """The bundled sample data, loaded the way the prepare stage loads it."""
    return load_source(settings.data.source)


@pytest.fixture
def sample_csv(sample: pd.DataFrame, tmp_path: Path) -> Path:
    """A fresh copy of the sample as CSV, free for a test to corrupt."""
    path = tmp_path / "sample.csv"
    sample.to_csv(path, index=False)
    return path
