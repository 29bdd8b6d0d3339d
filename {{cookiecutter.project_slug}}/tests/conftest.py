"""Fixtures shared by the code, data, model and service test families."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.bundle import (
    model_inputs,
    write_metadata,
    write_model_files,
)
from {{ cookiecutter.package_name }}.contract import (
    Contract,
    load_contract,
)
from {{ cookiecutter.package_name }}.explain import (
    background,
)
from {{ cookiecutter.package_name }}.onnx_model import (
    write_onnx,
)
from {{ cookiecutter.package_name }}.prepare import (
    SKLEARN_PREFIX,
    labelled_only,
    load_source,
)
from {{ cookiecutter.package_name }}.settings import (
    Settings,
    load_settings,
)
from {{ cookiecutter.package_name }}.tabular import (
    read_table,
)
from {{ cookiecutter.package_name }}.task import (
    Task,
)
from {{ cookiecutter.package_name }}.train import (
    fit_pipeline,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The project's real settings, read from its params.yaml."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(PROJECT_ROOT)
        loaded = load_settings()
    source = loaded.data.source
    if source.startswith(SKLEARN_PREFIX):
        return loaded
    # Your own CSV: found from any folder a test works in.
    data = loaded.data.model_copy(update={"source": str(PROJECT_ROOT / source)})
    return loaded.model_copy(update={"data": data})


@pytest.fixture(scope="session")
def contract(settings: Settings) -> Contract:
    """The project's real data contract."""
    return load_contract(PROJECT_ROOT / settings.contract_path)


@pytest.fixture(scope="session")
def sample(
    settings: Settings, contract: Contract, tmp_path_factory: pytest.TempPathFactory
) -> pd.DataFrame:
    """The project's data as every stage reads it: prepare's export, typed by the contract."""
    path = tmp_path_factory.mktemp("sample") / "sample.csv"
    labelled_only(load_source(settings.data.source), contract).to_csv(path, index=False)
    return read_table(path, contract)


@pytest.fixture
def sample_csv(sample: pd.DataFrame, tmp_path: Path) -> Path:
    """A fresh copy of the sample as CSV, free for a test to corrupt."""
    path = tmp_path / "sample.csv"
    sample.to_csv(path, index=False)
    return path


def export_bundle(
    pipeline: Any,
    contract: Contract,
    task: Task,
    directory: Path,
    version: str = "1",
    metrics: dict[str, float] | None = None,
    onnx_rows: pd.DataFrame | None = None,
    onnx_tolerance: float = 1e-4,
    background_rows: pd.DataFrame | None = None,
) -> Path:
    """Lay out a champion bundle exactly as `promote` exports one (no registry involved).

    With `onnx_rows` (model inputs) the bundle gets the ONNX graph when it passes parity on them;
    with `background_rows` (model inputs) the explanations' background rows.
    """
    rows = None if background_rows is None else background(pipeline, background_rows, seed=0)
    write_model_files(directory, pipeline, contract, rows)
    metadata: dict[str, Any] = {
        "model_name": "test-model",
        "version": version,
        "alias": "champion",
        "run_id": "0" * 32,
        "task": str(task),
        "metrics": metrics or {"score": 1.0},
        "exported_at": "2026-01-01T00:00:00+00:00",
    }
    if onnx_rows is not None:
        metadata["onnx"] = write_onnx(
            directory, pipeline, contract, task, onnx_rows, onnx_tolerance
        )
    (directory / "model_card.md").write_text(f"# test-model v{version}\n", encoding="utf-8")
    write_metadata(directory, metadata)
    return directory


@pytest.fixture(scope="session")
def fitted_pipeline(settings: Settings, contract: Contract, sample: pd.DataFrame) -> Any:
    """The configured estimator in the project's pipeline, fitted on the sample."""
    return fit_pipeline(settings, contract, sample)


@pytest.fixture(scope="session")
def exported_bundle(
    fitted_pipeline: Any,
    settings: Settings,
    contract: Contract,
    sample: pd.DataFrame,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The fitted pipeline's bundle with ONNX graph and background; read-only (copy to break)."""
    directory = tmp_path_factory.mktemp("exported") / "champion"
    onnx_rows = model_inputs(sample, contract)
    tolerance = settings.registry.onnx_tolerance
    return export_bundle(
        fitted_pipeline, contract, settings.task, directory, onnx_rows=onnx_rows,
        onnx_tolerance=tolerance, background_rows=onnx_rows,
    )  # fmt: skip


@pytest.fixture
def champion_bundle(exported_bundle: Path, tmp_path: Path) -> Path:
    """A fresh copy of the champion bundle, free for a test to break."""
    return Path(shutil.copytree(exported_bundle, tmp_path / "champion"))


ServiceSettings = Callable[..., Settings]


@pytest.fixture
def service_settings(settings: Settings, champion_bundle: Path, tmp_path: Path) -> ServiceSettings:
    """Settings that serve the test's champion bundle and log to its own folder.

    Keyword arguments override `serve` settings, validated like params.yaml.
    """

    def make(**serve: Any) -> Settings:
        return settings.model_copy(
            update={
                "registry": settings.registry.model_copy(update={"export_dir": champion_bundle}),
                "serve": type(settings.serve).model_validate(
                    {**settings.serve.model_dump(), "prediction_log_dir": tmp_path / "log", **serve}
                ),
            }
        )

    return make
