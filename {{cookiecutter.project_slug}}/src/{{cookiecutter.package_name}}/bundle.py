"""The champion bundle: the one place that writes, verifies, loads and predicts with a model.

A bundle is a folder: `model.joblib`, the `contract.yaml` it was trained with, `metadata.json`
(registry version, metrics, SHA-256 of the model and the contract) and a model card. Training
logs the first two, promotion adds the rest and swaps the folder in atomically; the service
and `monitor` load it through `load_champion` and predict through `Champion`, so both answer
with the same code. Imports scikit-learn (through joblib) only when a model is loaded, and
never MLflow: serving needs no tracking server.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .contract import Contract, dump_contract, load_contract
from .errors import ProjectError
from .onnx_model import MISSING_CATEGORY, ONNX_FILE, OnnxModel
from .task import Prediction, Predictions, Task

if TYPE_CHECKING:  # the ONNX service never imports pandas; the scikit-learn path does, lazily
    import pandas as pd

    from .settings import Runtime, RuntimeChoice

MODEL_FILE = "model.joblib"
CONTRACT_FILE = "contract.yaml"
METADATA_FILE = "metadata.json"
CARD_FILE = "model_card.md"
CARD_HTML_FILE = "model_card.html"
# The champion's answers on its held-out rows: monitoring resamples them beside a window's.
EVALUATION_FILE = "evaluation.csv"
# Training rows, encoded as the estimator sees them: what explanations compare a record with.
BACKGROUND_FILE = "background.npy"
# Files the metadata's checksums cover: a changed contract changes what the API accepts.
# metadata.json's map of every other file in the bundle to its SHA-256: what verification checks.
FILES_KEY = "files"
REQUIRED_FILES = (MODEL_FILE, CONTRACT_FILE)
_LOAD_ATTEMPTS = 5
# The recovery for any bundle problem: the `export` command writes the champion's bundle again.
REEXPORT = "fix: re-export the champion from the registry (`export`)"

logger = logging.getLogger(__name__)

__all__ = ["Champion", "ModelNotReadyError", "Prediction", "load_champion"]


class ModelNotReadyError(Exception):
    """The bundle is missing, corrupt or inconsistent; the message says which and the fix."""


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_inputs(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """The feature columns as every pipeline expects them: numbers as floats, categories as text.

    The one coercion to model types: training, evaluation, monitoring and the service use it.
    A missing category is MISSING_CATEGORY, not NaN: ONNX graphs impute strings only.
    """
    import pandas as pd

    inputs = frame[contract.feature_names].copy()
    for column in contract.features:
        values = inputs[column.name]
        if column.is_numeric:
            inputs[column.name] = pd.to_numeric(values, errors="coerce").astype(float)
        else:
            inputs[column.name] = values.astype(object).where(values.notna(), MISSING_CATEGORY)
    return inputs


@dataclass(frozen=True)
class Champion:
    """A loaded, verified model with the contract and metadata it was exported with."""

    pipeline: Any
    contract: Contract
    metadata: dict[str, Any]
    task: Task

    @property
    def version(self) -> str:
        """The registry version being served."""
        return str(self.metadata["version"])

    @property
    def runtime(self) -> Runtime:
        """What answers: the bundle's ONNX graph in onnxruntime, or the scikit-learn pipeline."""
        return "onnx" if isinstance(self.pipeline, OnnxModel) else "sklearn"

    def frame(self, rows: list[tuple[Any, ...]]) -> pd.DataFrame:
        """Rows of feature values, in contract order, as the pipeline's input frame."""
        import pandas as pd

        names = self.contract.feature_names
        if all(column.is_numeric for column in self.contract.features):
            # One float block: ten times faster to build than a frame of object columns.
            values = np.array(rows, dtype=float).reshape(len(rows), len(names))
            return pd.DataFrame(values, columns=names)
        return model_inputs(pd.DataFrame(rows, columns=names, dtype=object), self.contract)

    def predict(self, rows: list[tuple[Any, ...]]) -> list[Prediction]:
        """Predictions for `rows`, in order: one model call for all of them."""
        if isinstance(self.pipeline, OnnxModel):  # straight to arrays: no frame to build
            return self.task.predict(self.pipeline, self.pipeline.feeds(rows))
        return self.task.predict(self.pipeline, self.frame(rows))

    def predict_frame(self, frame: pd.DataFrame) -> list[Prediction]:
        """Predictions for the contract's feature columns of `frame`, in row order."""
        return self.task.predict(self.pipeline, model_inputs(frame, self.contract))

    def predict_arrays(self, frame: pd.DataFrame) -> Predictions:
        """The same answers as `predict_frame`, as arrays: batch scoring's call."""
        return self.task.predict_arrays(self.pipeline, model_inputs(frame, self.contract))


def write_model_files(
    directory: Path, pipeline: Any, contract: Contract, background: np.ndarray[Any, Any] | None
) -> None:
    """The part of a bundle training produces: the fitted pipeline, its contract, background.

    The background (training rows, encoded: explain.background) is what linear and permutation
    explanations need; without it only tree models can be explained.
    """
    import joblib

    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, directory / MODEL_FILE)
    (directory / CONTRACT_FILE).write_text(dump_contract(contract), encoding="utf-8")
    if background is not None:
        np.save(directory / BACKGROUND_FILE, background, allow_pickle=False)


def read_background(bundle: Path) -> np.ndarray[Any, Any] | None:
    """The bundle's background rows (verified with the bundle), or None for an older bundle."""
    path = bundle / BACKGROUND_FILE
    return np.load(path, allow_pickle=False) if path.is_file() else None


def checksums(directory: Path) -> dict[str, Any]:
    """The metadata entries that pin every file of a bundle (but the metadata itself)."""
    files = {
        path.relative_to(directory).as_posix(): sha256(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path != directory / METADATA_FILE
    }
    return {"model_sha256": files.get(MODEL_FILE, ""), FILES_KEY: files}


def write_metadata(directory: Path, metadata: dict[str, Any]) -> None:
    """Complete a bundle: metadata with the checksums of every file now in `directory`.

    Written last: a file added after it would not be covered.
    """
    document = {**metadata, **checksums(directory)}
    (directory / METADATA_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def read_metadata(bundle: Path) -> dict[str, Any] | None:
    """A bundle's metadata, or None when there is no bundle (or it is unreadable)."""
    try:
        document = json.loads((bundle / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _rename_exchange() -> Any | None:
    """Glibc's renameat2, which swaps two paths in one step; None where there is none."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    function = getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None)
    if function is None:
        return None
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    return function


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def install(staging: Path, target: Path) -> None:
    """Make the complete bundle in `staging` the one at `target`, in one atomic step.

    Both paths must be on one filesystem (stage beside the target). Where the kernel can swap
    two paths (Linux's renameat2), a reader sees the old bundle or the new one, never none.
    """
    if not target.exists():
        staging.rename(target)
        return
    exchange = _rename_exchange()
    if exchange is not None and (
        exchange(_AT_FDCWD, os.fsencode(staging), _AT_FDCWD, os.fsencode(target), _RENAME_EXCHANGE)
        == 0
    ):
        shutil.rmtree(staging)  # now the previous bundle
        return
    # No atomic exchange (another OS or filesystem): the gap is two renames long, and a reader
    # that falls in it retries (see load_champion).
    previous = Path(tempfile.mkdtemp(dir=staging.parent, prefix=".previous-"))
    target.rename(previous / "bundle")
    staging.rename(target)
    shutil.rmtree(previous)


def _identity(path: Path) -> tuple[int, int, int, bytes] | None:
    """The bundle folder's inode, its change time and its metadata's bytes: a swap changes them.

    The inode alone is not enough: a filesystem may give a new folder a just-freed inode, and
    two swaps during one read can bring back the same version's metadata in it; the folder's
    change time (set when it was copied in and renamed) tells those apart.
    """
    try:
        status = path.stat()
        metadata = (path / METADATA_FILE).read_bytes()
    except OSError:
        return None
    return status.st_dev, status.st_ino, status.st_ctime_ns, metadata


def load_champion(bundle: Path, task: Task, runtime: RuntimeChoice = "sklearn") -> Champion:
    """Load and verify the bundle in `bundle`; raise ModelNotReadyError naming the problem.

    `runtime` auto answers with the bundle's ONNX graph when it passed parity at export (and
    onnxruntime is installed), else with scikit-learn; onnx insists on the graph.
    A bundle swapped in while it is read is read again: a reader never gets half of each.
    """
    for _ in range(_LOAD_ATTEMPTS):
        before = _identity(bundle)
        try:
            champion = _load_once(bundle, task, runtime)
        except ModelNotReadyError:
            if _identity(bundle) != before:
                continue
            raise
        if _identity(bundle) == before:
            logger.info(
                "serving model v%s from %s with %s", champion.version, bundle, champion.runtime
            )
            return champion
    raise ModelNotReadyError(f"{bundle} kept changing while it was read; fix: retry")


def _verified_metadata(bundle: Path) -> dict[str, Any]:
    for required in (*REQUIRED_FILES, METADATA_FILE):
        if not (bundle / required).is_file():
            raise ModelNotReadyError(
                f"{bundle / required} not found; fix: run the pipeline (`dvc repro`) or mount an "
                "exported champion bundle there"
            )
    metadata_file = bundle / METADATA_FILE
    try:
        metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
        expected = {str(name): str(digest) for name, digest in metadata[FILES_KEY].items()}
        str(metadata["version"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ModelNotReadyError(
            f"{metadata_file} is unreadable or lists no checksums ({error!r}); {REEXPORT}"
        ) from None
    unlisted = [name for name in REQUIRED_FILES if name not in expected]
    if unlisted:
        raise ModelNotReadyError(f"{metadata_file} has no checksum for {unlisted[0]}; {REEXPORT}")
    for name, digest in expected.items():
        _check_file(bundle, name, digest)
    return dict(metadata)


def _check_file(bundle: Path, name: str, digest: str) -> None:
    path = bundle / name
    try:
        actual = sha256(path)
    except OSError as error:
        raise ModelNotReadyError(f"{path} cannot be read: {error}; {REEXPORT}") from None
    if actual != digest:
        raise ModelNotReadyError(
            f"{path} SHA-256 {actual[:12]}... does not match {bundle / METADATA_FILE} "
            f"({digest[:12]}...): the file is corrupt or was replaced; {REEXPORT} and do not "
            "edit the bundle"
        )


def _onnx_model(bundle: Path, metadata: dict[str, Any], contract: Contract) -> OnnxModel:
    """The bundle's ONNX graph; ModelNotReadyError saying why there is none to serve."""
    record = metadata.get("onnx") or {}
    version = metadata["version"]
    if record.get("runtime") != "onnx" or not (bundle / ONNX_FILE).is_file():
        why = record.get("reason", "it was exported without one")
        raise ModelNotReadyError(
            f"model v{version} has no ONNX graph ({why}); fix: set serve.runtime to auto or sklearn"
        )
    try:
        return OnnxModel((bundle / ONNX_FILE).read_bytes(), contract, record.get("classes", []))
    except Exception as error:  # ImportError, or onnxruntime refusing the graph
        raise ModelNotReadyError(f"{bundle / ONNX_FILE} could not be loaded: {error!r}") from None


def _load_once(bundle: Path, task: Task, runtime: RuntimeChoice) -> Champion:
    metadata = _verified_metadata(bundle)
    version = metadata["version"]
    try:
        contract = load_contract(bundle / CONTRACT_FILE)
    except ProjectError as error:
        raise ModelNotReadyError(str(error)) from None
    if runtime != "sklearn":
        try:
            onnx = _onnx_model(bundle, metadata, contract)
        except ModelNotReadyError as error:
            if runtime == "onnx":
                raise
            logger.info("answering with scikit-learn: %s", error)
        else:
            return Champion(pipeline=onnx, contract=contract, metadata=metadata, task=task)
    try:
        import joblib
    except ImportError:  # the ONNX-only image leaves the scikit-learn stack out
        raise ModelNotReadyError(
            f"model v{version} needs scikit-learn, which is not installed here (an ONNX-only "
            "image); fix: serve.runtime auto with a bundle that has an ONNX graph, or build "
            "the image with --build-arg RUNTIME=sklearn"
        ) from None

    try:
        pipeline = joblib.load(bundle / MODEL_FILE)
    except Exception as error:  # any unpickling failure: not servable
        raise ModelNotReadyError(f"{bundle / MODEL_FILE} could not be loaded: {error!r}") from None
    fitted_on = [str(name) for name in getattr(pipeline, "feature_names_in_", [])]
    if fitted_on != contract.feature_names:
        raise ModelNotReadyError(
            f"model v{version} was fitted on features {fitted_on} but its contract declares "
            f"{contract.feature_names}; {REEXPORT}"
        )
    classes = sorted(str(label) for label in getattr(pipeline, "classes_", []))
    if classes and classes != sorted(contract.target.allowed or []):
        raise ModelNotReadyError(
            f"model v{version} predicts classes {classes} but its contract allows "
            f"{contract.target.allowed}; {REEXPORT}"
        )
    return Champion(pipeline=pipeline, contract=contract, metadata=metadata, task=task)
