"""Stage `prepare`: write the raw dataset and hold back a production batch for monitoring."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .contract import Contract
from .errors import ProjectError
from .rows import production_split
from .settings import Settings
from .tabular import read_table, require_columns

SKLEARN_PREFIX = "sklearn:"


def _breast_cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame: pd.DataFrame = bunch.frame
    frame.columns = [str(name).replace(" ", "_") for name in frame.columns]
    # sklearn codes 0 = malignant, 1 = benign; named labels make reports and the API readable.
    diagnosis = frame.pop("target").map(dict(enumerate(bunch.target_names)))
    return frame.assign(diagnosis=diagnosis)


def _diabetes() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    frame: pd.DataFrame = load_diabetes(as_frame=True, scaled=False).frame
    frame["sex"] = frame["sex"].astype(int)  # two codes, 1 and 2: a category, not a quantity
    return frame.rename(columns={"target": "disease_progression"})


SKLEARN_DATASETS: dict[str, Callable[[], pd.DataFrame]] = {
    "breast_cancer": _breast_cancer,
    "diabetes": _diabetes,
}


@dataclass(frozen=True)
class PrepareResult:
    """What `prepare` wrote, for the CLI to report."""

    raw_rows: int
    train_rows: int
    production_rows: int
    unlabelled_rows: int = 0  # source rows without a target value, left out


def load_source(source: str) -> pd.DataFrame:
    """Load `sklearn:<name>` (bundled with scikit-learn, nothing downloaded) or a CSV path."""
    if source.startswith(SKLEARN_PREFIX):
        name = source.removeprefix(SKLEARN_PREFIX)
        if name not in SKLEARN_DATASETS:
            known = ", ".join(SKLEARN_PREFIX + known for known in SKLEARN_DATASETS)
            raise ProjectError(
                f"data.source {source!r} is unknown; fix: use one of {known} or a CSV path"
            )
        return SKLEARN_DATASETS[name]()
    return read_table(Path(source))


def labelled_only(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """The rows with a label: a row without one can be neither learnt from nor judged."""
    return frame[frame[contract.target.name].notna()].reset_index(drop=True)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def run_prepare(settings: Settings, contract: Contract) -> PrepareResult:
    """Write data/raw and the training / production split described by params.yaml."""
    data = settings.data
    raw = load_source(data.source)
    target = contract.target.name
    if target not in raw.columns:
        raise ProjectError(
            f"data.source {data.source!r} has no target column {target!r}; "
            "fix: set target.name in the data contract"
        )
    fix = "correct the contract (`profile` proposes one) or the data"
    require_columns(raw.columns, contract.feature_names, f"data.source {data.source!r}", fix)
    in_source = len(raw)
    raw = labelled_only(raw, contract)
    unlabelled = in_source - len(raw)
    # Split by row key: a row (and any copy of it) is always on the same side.
    train, production = production_split(raw, settings, contract)
    # Labelled production traffic (`retrain`) joins the training pool; the held-back batch stays
    # the same rows, so monitoring keeps comparing like with like.
    labelled = read_labelled_batches(settings.monitor.labelled_dir, list(raw.columns), contract)
    if labelled is not None:
        raw = pd.concat([raw, labelled], ignore_index=True)
        train = pd.concat([train, labelled], ignore_index=True)
    _write_csv(raw, data.raw_path)
    # Staged, not published: only data the validation gate accepts becomes the training pool,
    # the reference `monitor` compares with and the rows `simulate` draws from.
    _write_csv(train, data.staged_dir / data.train_path.name)
    _write_csv(production, data.staged_dir / data.production_path.name)
    return PrepareResult(len(raw), len(train), len(production), unlabelled)


def publish_split(settings: Settings) -> None:
    """Make the staged split the prepared one; `validate` calls this once the gate passed."""
    data = settings.data
    for published in (data.train_path, data.production_path):
        staged = data.staged_dir / published.name
        if not staged.is_file():
            raise ProjectError(f"{staged} not found; fix: run the prepare stage (dvc repro)")
        published.parent.mkdir(parents=True, exist_ok=True)
        partial = published.with_name(published.name + ".partial")
        shutil.copyfile(staged, partial)
        os.replace(partial, published)  # a reader sees the old file or the new, never half


def read_labelled_batches(
    folder: Path, columns: list[str], contract: Contract
) -> pd.DataFrame | None:
    """Every labelled batch `retrain` stored, in name (time) order; None if there is none.

    A batch holds the contract's columns only (what the service logs and labels carry): the
    source's columns outside the contract stay blank in its rows (so an integer one among them
    is written as floats in data/raw; training reads the contract's columns only).
    """
    required = [column.name for column in contract.columns]
    batches = []
    for path in sorted(folder.glob("*.csv")):
        batch = read_table(path)
        fix = "move the file out of the labelled folder or correct its header"
        require_columns(batch.columns, required, path, fix)
        batches.append(batch.reindex(columns=columns))
    return pd.concat(batches, ignore_index=True) if batches else None
