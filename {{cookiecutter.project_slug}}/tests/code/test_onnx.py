"""The ONNX export: kept only when it answers as scikit-learn, and then what the service runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from {{ cookiecutter.package_name }}.bundle import (
    METADATA_FILE,
    ModelNotReadyError,
    load_champion,
    model_inputs,
)
from {{ cookiecutter.package_name }}.contract import (
    Contract,
)
from {{ cookiecutter.package_name }}.onnx_model import (
    ONNX_FILE,
    export_onnx,
)
from {{ cookiecutter.package_name }}.settings import (
    Settings,
)

from ..conftest import export_bundle
from ..service.conftest import serving

# Shared libraries of the training stack: a process that imported them has them mapped.
TRAINING_LIBRARIES = ("/pandas/", "/sklearn/", "/scipy/")


def _rows_with_gaps(sample: pd.DataFrame, contract: Contract) -> list[tuple[Any, ...]]:
    """Real rows as the service receives them (JSON values, None when missing), then the same
    rows with each feature missing in turn.
    """
    names = contract.feature_names
    records = json.loads(sample[names].head(20).to_json(orient="records"))
    rows = [tuple(record[name] for name in names) for record in records]
    for index in range(len(names)):
        row = rows[index % len(records)]
        rows.append(tuple(None if i == index else value for i, value in enumerate(row)))
    return rows


def test_the_exported_graph_answers_as_scikit_learn(
    exported_bundle: Path, settings: Settings, sample: pd.DataFrame, contract: Contract
) -> None:
    record = json.loads((exported_bundle / METADATA_FILE).read_text())["onnx"]
    assert record["runtime"] == "onnx", record
    assert record["rows"] == len(sample)
    assert record["classes_differ"] == 0
    assert record["max_difference"] <= settings.registry.onnx_tolerance
    onnx = load_champion(exported_bundle, settings.task, "auto")
    reference = load_champion(exported_bundle, settings.task, "sklearn")
    assert (onnx.runtime, reference.runtime) == ("onnx", "sklearn")
    # The service's path (rows straight to arrays, None for a gap) and batch scoring's (a frame).
    rows = _rows_with_gaps(sample, contract)
    frame = pd.DataFrame(rows, columns=contract.feature_names)
    expected, tolerance = reference.predict(rows), settings.registry.onnx_tolerance
    for got in (onnx.predict(rows), onnx.predict_frame(frame)):
        for mine, theirs in zip(got, expected, strict=True):
            if theirs.probabilities is None:
                assert mine.value == pytest.approx(theirs.value, rel=tolerance, abs=tolerance)
            else:
                assert mine.value == theirs.value
                assert mine.probabilities == pytest.approx(theirs.probabilities, abs=tolerance)


def test_a_graph_outside_the_tolerance_is_left_out_and_the_bundle_says_why(
    fitted_pipeline: Any,
    settings: Settings,
    sample: pd.DataFrame,
    contract: Contract,
    tmp_path: Path,
) -> None:
    """float32 is never within 1e-12 of float64: the planted mismatch every model has."""
    bundle = export_bundle(
        fitted_pipeline, contract, settings.task, tmp_path / "champion",
        onnx_rows=model_inputs(sample, contract), onnx_tolerance=1e-12,
    )  # fmt: skip
    record = json.loads((bundle / METADATA_FILE).read_text())["onnx"]
    assert record["runtime"] == "sklearn"
    assert "ONNX differs from scikit-learn" in record["reason"]
    assert "registry.onnx_tolerance 1e-12" in record["reason"]
    assert not (bundle / ONNX_FILE).exists()
    assert load_champion(bundle, settings.task, "auto").runtime == "sklearn"
    with pytest.raises(
        ModelNotReadyError, match=r"has no ONNX graph \(ONNX differs.*serve\.runtime"
    ):
        load_champion(bundle, settings.task, "onnx")


def test_a_step_skl2onnx_cannot_convert_falls_back_with_the_reason(
    fitted_pipeline: Any, settings: Settings, sample: pd.DataFrame, contract: Contract
) -> None:
    custom = Pipeline(
        [
            ("features", clone(fitted_pipeline.named_steps["features"])),
            ("custom", FunctionTransformer(np.tanh)),  # arbitrary Python: no ONNX equivalent
            ("model", clone(fitted_pipeline.named_steps["model"])),
        ]
    )
    inputs = model_inputs(sample, contract)
    custom.fit(inputs, sample[contract.target.name])
    graph, record = export_onnx(custom, contract, settings.task, inputs, 1e-4)
    assert graph is None
    assert record["runtime"] == "sklearn"
    assert record["reason"].startswith("skl2onnx cannot convert it: ")


# The export (conversion and parity) and the ONNX runtime, in a process of their own: onnxruntime
# reads its telemetry switch once per process, when the runtime starts.
EXPORT_AND_PREDICT = """
import sys
from pathlib import Path
from {{ cookiecutter.package_name }}.bundle import load_champion, model_inputs
from {{ cookiecutter.package_name }}.onnx_model import OnnxModel, export_onnx
from {{ cookiecutter.package_name }}.tabular import read_table
from {{ cookiecutter.package_name }}.task import task_named

bundle, sample, task_name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
champion = load_champion(bundle, task_named(task_name), "sklearn")
# Typed as every stage reads a CSV: categories as text ("1", not the number 1).
inputs = model_inputs(read_table(sample, champion.contract), champion.contract)
graph, record = export_onnx(champion.pipeline, champion.contract, champion.task, inputs, 1e-4)
assert graph is not None, record
classes = list(getattr(champion.pipeline, "classes_", []))
OnnxModel(graph, champion.contract, classes).predict(inputs)
"""


def test_onnxruntime_keeps_its_telemetry_off_and_writes_nothing_home(
    exported_bundle: Path, sample: pd.DataFrame, settings: Settings, tmp_path: Path
) -> None:
    """Without the opt-out, onnxruntime keeps a device id and unsent events in ~/.cache."""
    home, sample_file = tmp_path / "home", tmp_path / "sample.csv"
    home.mkdir()
    sample.head(50).to_csv(sample_file, index=False)
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("ORT_")
    } | {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    arguments = [str(exported_bundle), str(sample_file), str(settings.task)]
    subprocess.run(
        [sys.executable, "-c", EXPORT_AND_PREDICT, *arguments],
        env=environment, check=True, timeout=300,
    )  # fmt: skip
    assert [path.relative_to(home) for path in home.rglob("*")] == []


def test_a_replaced_graph_fails_verification(champion_bundle: Path, settings: Settings) -> None:
    graph = champion_bundle / ONNX_FILE
    graph.write_bytes(graph.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ModelNotReadyError, match=r"model\.onnx SHA-256 .* does not match"):
        load_champion(champion_bundle, settings.task, "auto")


@pytest.mark.slow
def test_the_onnx_service_process_never_loads_the_training_stack(
    exported_bundle: Path, sample: pd.DataFrame, contract: Contract, tmp_path: Path
) -> None:
    """A real `serve` process: its memory maps show which libraries it ever imported."""
    record = json.loads(sample[contract.feature_names].head(3).to_json(orient="records"))
    with serving(exported_bundle, tmp_path / "log") as service:
        body, headers = json.dumps(record).encode(), {"Content-Type": "application/json"}
        request = urllib.request.Request(f"{service.url}/predict", body, headers)  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            assert len(json.loads(response.read())["predictions"]) == 3
        with urllib.request.urlopen(f"{service.url}/model", timeout=30) as response:  # noqa: S310
            assert json.loads(response.read())["runtime"] == "onnx"
        maps = Path(f"/proc/{service.process.pid}/maps").read_text()
    assert "onnxruntime" in maps
    loaded = [library for library in TRAINING_LIBRARIES if library in maps]
    assert loaded == [], f"the ONNX service loaded {loaded}"
