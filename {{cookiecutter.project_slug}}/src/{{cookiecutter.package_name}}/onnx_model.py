"""The champion as an ONNX graph: exported with skl2onnx, kept only if it answers as scikit-learn.

onnxruntime answers a single record about a hundred times faster than the scikit-learn
pipeline (per-call overhead, not the model, dominates there). A faster answer must not be a
different one: `export_onnx` scores the held-out rows with both and keeps the graph only when
every class is the same and every probability (or value) is within `registry.onnx_tolerance`;
otherwise the bundle records why and the service answers with scikit-learn.

Imports neither pandas nor scikit-learn at module level: the ONNX runtime path needs neither.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .privacy import opt_out

if TYPE_CHECKING:
    import pandas as pd

    from .contract import Contract
    from .task import Predictions, Task

ONNX_FILE = "model.onnx"
# What a missing category is to every pipeline: skl2onnx imputes strings only, never NaN.
MISSING_CATEGORY = ""
# The ONNX opsets the export targets: the newest onnxruntime >= 1.20 runs.
_OPSETS = {"": 18, "ai.onnx.ml": 3}
Feeds = dict[str, np.ndarray[Any, Any]]


def onnxruntime_module() -> Any:
    """onnxruntime, with its usage telemetry off (privacy.py) unless you turned it on."""
    opt_out()
    import onnxruntime

    return onnxruntime


class OnnxModel:
    """An onnxruntime session with the scikit-learn surface `Task` calls: predict(_proba), classes_.

    Takes a frame of model inputs (`bundle.model_inputs`) or the rows the service received.
    """

    def __init__(self, graph: bytes, contract: Contract, classes: Sequence[str]) -> None:
        onnxruntime = onnxruntime_module()
        options = onnxruntime.SessionOptions()
        # One thread per call: the service runs calls side by side; more would oversubscribe.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            graph, options, providers=["CPUExecutionProvider"]
        )
        # skl2onnx renames inputs ('/' and other characters); they stay in contract order.
        self._inputs = [node.name for node in self._session.get_inputs()]
        self._numeric = [column.is_numeric for column in contract.features]
        if len(self._inputs) != len(self._numeric):
            raise ValueError(
                f"the graph takes {len(self._inputs)} inputs; the contract has "
                f"{len(self._numeric)} features"
            )
        self.feature_names_in_ = np.asarray(contract.feature_names, dtype=object)
        self.classes_ = np.asarray(list(classes), dtype=object)
        outputs = [node.name for node in self._session.get_outputs()]
        self._output = outputs.index("probabilities") if classes else 0

    def feeds(self, rows: Sequence[Sequence[Any]]) -> Feeds:
        """The service's rows (feature values in contract order, None when missing) as inputs."""
        count = len(rows)
        feeds: Feeds = {}
        for index, (name, numeric) in enumerate(zip(self._inputs, self._numeric, strict=True)):
            values = [row[index] for row in rows]
            if numeric:  # numpy reads None as NaN in a float array: the imputer's missing value
                feeds[name] = np.array(values, dtype=np.float32).reshape(count, 1)
            else:
                text = [MISSING_CATEGORY if value is None else str(value) for value in values]
                feeds[name] = np.array(text, dtype=object).reshape(count, 1)
        return feeds

    def _frame_feeds(self, frame: pd.DataFrame) -> Feeds:
        feeds: Feeds = {}
        for name, column, numeric in zip(self._inputs, frame.columns, self._numeric, strict=True):
            values = frame[column].to_numpy()
            if numeric:
                feeds[name] = values.astype(np.float32).reshape(-1, 1)
            else:
                feeds[name] = values.astype(str).astype(object).reshape(-1, 1)
        return feeds

    def _run(self, inputs: pd.DataFrame | Mapping[str, Any]) -> np.ndarray[Any, Any]:
        feeds = dict(inputs) if isinstance(inputs, Mapping) else self._frame_feeds(inputs)
        return np.asarray(self._session.run(None, feeds)[self._output], dtype=float)

    def predict_proba(self, inputs: pd.DataFrame | Mapping[str, Any]) -> np.ndarray[Any, Any]:
        """One column per class of `classes_`."""
        return self._run(inputs)

    def predict(self, inputs: pd.DataFrame | Mapping[str, Any]) -> np.ndarray[Any, Any]:
        """The most probable class (the first on a tie), or the predicted value."""
        outputs = self._run(inputs)
        if len(self.classes_):
            return np.asarray(self.classes_[outputs.argmax(axis=1)])
        return outputs.reshape(-1)


def _convert(pipeline: Any, contract: Contract, task: Task) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    types = [
        (
            column.name,
            FloatTensorType([None, 1]) if column.is_numeric else StringTensorType([None, 1]),
        )
        for column in contract.features
    ]
    # Probabilities as one matrix, not a list of dicts (zipmap): what predict_proba returns.
    options = (
        {id(pipeline.steps[-1][1]): {"zipmap": False}} if task.prediction_is_categorical else None
    )
    graph = to_onnx(pipeline, initial_types=types, options=options, target_opset=_OPSETS)
    return bytes(graph.SerializeToString())


def _largest_difference(expected: Predictions, got: Predictions) -> tuple[float, int]:
    """(largest probability or relative value difference, rows whose class differs)."""
    if expected.probabilities is not None and got.probabilities is not None:
        classes_differ = int((expected.values != got.values).sum())
        return float(np.abs(expected.probabilities - got.probabilities).max()), classes_differ
    scale = np.maximum(np.abs(expected.values), 1.0)
    return float((np.abs(expected.values - got.values) / scale).max()), 0


def export_onnx(
    pipeline: Any, contract: Contract, task: Task, held_out: pd.DataFrame, tolerance: float
) -> tuple[bytes | None, dict[str, Any]]:
    """The graph and its parity record, or None and the record saying why scikit-learn serves.

    `held_out` holds model inputs (`bundle.model_inputs`): the rows parity is judged on.
    """
    classes = [str(label) for label in getattr(pipeline, "classes_", [])]
    record: dict[str, Any] = {"rows": len(held_out), "tolerance": tolerance, "classes": classes}
    if held_out.empty:
        return None, {**record, "runtime": "sklearn", "reason": "no held-out rows to check parity"}
    try:
        graph = _convert(pipeline, contract, task)
        model = OnnxModel(graph, contract, classes)
        got = task.predict_arrays(model, held_out)
    except Exception as error:  # skl2onnx and onnxruntime raise many types for one cause
        reason = f"skl2onnx cannot convert it: {str(error).strip().splitlines()[0][:300]}"
        return None, {**record, "runtime": "sklearn", "reason": reason}
    expected = task.predict_arrays(pipeline, held_out)
    difference, classes_differ = _largest_difference(expected, got)
    record |= {"max_difference": difference, "classes_differ": classes_differ}
    if classes_differ or not difference <= tolerance:
        reason = (
            f"ONNX differs from scikit-learn on the {len(held_out)} held-out rows: "
            f"{classes_differ} other classes, largest difference {difference:.3g} "
            f"(registry.onnx_tolerance {tolerance:g})"
        )
        return None, {**record, "runtime": "sklearn", "reason": reason}
    return graph, {**record, "runtime": "onnx"}


def write_onnx(
    directory: Path,
    pipeline: Any,
    contract: Contract,
    task: Task,
    held_out: pd.DataFrame,
    tolerance: float,
) -> dict[str, Any]:
    """Put the pipeline's graph in the bundle `directory` if it passes parity; the record says."""
    graph, record = export_onnx(pipeline, contract, task, held_out, tolerance)
    if graph is not None:
        (directory / ONNX_FILE).write_bytes(graph)
    return record
