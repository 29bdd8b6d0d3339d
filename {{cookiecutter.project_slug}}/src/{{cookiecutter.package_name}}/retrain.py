"""Command `retrain`: add newly labelled rows to the training pool and re-run the pipeline.

The rows pass the data contract (Great Expectations) before they are stored, so a bad batch
never reaches the pipeline. They go into `monitor.labelled_dir`, a dependency of `prepare`, so
`dvc repro` rebuilds the training set (a DVC output, versioned in dvc.lock and the cache),
trains, evaluates and lets the promotion gate decide: the champion changes only if the new
model is better.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from .bundle import read_metadata
from .contract import Contract
from .errors import DataValidationError, ProjectError, QualityGateError
from .files import claim_new_path, utc_stamp
from .monitoring.records import PREDICTION
from .monitoring.window import Window
from .processes import run_as_group
from .rows import row_keys
from .settings import Settings
from .tabular import read_table


@dataclass(frozen=True)
class NewRows:
    """A labelled batch's rows that are new to the training data, and what was skipped."""

    rows: pd.DataFrame
    known: int
    repeated: int

    def skipped(self) -> str:
        """What was left out and why, for the CLI ('' when nothing was)."""
        parts = []
        if self.known:
            parts.append(f"{self.known} already in the training data")
        if self.repeated:
            parts.append(f"{self.repeated} repeated within the batch")
        return f" (skipped {' and '.join(parts)})" if parts else ""


def new_rows(rows: pd.DataFrame, settings: Settings, contract: Contract) -> NewRows:
    """The rows whose features are new: not in the training pool, a stored batch, or earlier rows.

    A row learnt twice would weigh double, and a copy of a held-out row would leak it: rows are
    identified by their features (`rows.row_keys`), whatever their label says.
    """
    features = contract.feature_names
    keys = row_keys(rows, features)
    stored = [settings.data.train_path, *sorted(settings.monitor.labelled_dir.glob("*.csv"))]
    known: set[str] = set()
    for path in (path for path in stored if path.is_file()):
        known.update(row_keys(read_table(path, contract), features))
    is_known = keys.isin(known)
    repeated = keys.duplicated() & ~is_known
    fresh = rows[~is_known & ~repeated].reset_index(drop=True)
    return NewRows(fresh, int(is_known.sum()), int(repeated.sum()))


@dataclass(frozen=True)
class RetrainResult:
    """What retraining stored and what the gate decided."""

    batch_path: Path | None
    rows: int
    champion_before: int | None
    champion_after: int | None
    skipped: str = ""

    @property
    def champion_changed(self) -> bool:
        """Whether the promotion gate replaced the champion."""
        return self.champion_after != self.champion_before

    def message(self) -> str:
        """One line for the CLI."""
        if self.batch_path is None:
            return (
                f"nothing new to learn from{self.skipped}: nothing stored, the pipeline did not "
                f"run, the champion is unchanged (v{self.champion_before})"
            )
        stored = f"stored {self.rows} labelled rows in {self.batch_path}{self.skipped}"
        if self.champion_changed:
            return (
                f"{stored}; the gate promoted v{self.champion_after} (was v{self.champion_before})"
            )
        return f"{stored}; the gate kept v{self.champion_before}: the new model was not better"


def labelled_rows(window: Window, contract: Contract) -> pd.DataFrame:
    """The window's labelled rows as training rows: features and the true target."""
    if window.labels is None or window.labels.notna().sum() == 0:
        raise ProjectError(
            f"{window.source}: no labelled rows; fix: pass --labels (prediction_id, row, "
            f"{contract.target.name}) or a CSV with the {contract.target.name} column"
        )
    labelled = window.labels.notna()
    rows = window.frame.loc[labelled, contract.feature_names].copy()
    rows[contract.target.name] = window.labels[labelled].to_numpy()
    return rows.drop(columns=[PREDICTION], errors="ignore").reset_index(drop=True)


def labelled_file(path: Path, contract: Contract) -> pd.DataFrame:
    """A labelled CSV's contract columns (features and target); a missing one is named."""
    rows = read_table(path, contract)
    names = [column.name for column in (*contract.features, contract.target)]
    missing = [name for name in names if name not in rows.columns]
    if missing:
        raise ProjectError(f"{path}: missing columns {', '.join(missing)}; fix: add them")
    return rows[names]


def champion_version(settings: Settings) -> int | None:
    """The exported champion's registry version, or None before the first promotion."""
    metadata = read_metadata(settings.registry.export_dir)
    return None if metadata is None else int(metadata["version"])


def store_batch(rows: pd.DataFrame, settings: Settings, contract: Contract, now: datetime) -> Path:
    """Validate `rows` against the contract, then store them as a new labelled batch."""
    from .validate import format_outcome, validate_file

    stamp = utc_stamp(now)
    columns = [column.name for column in (*contract.features, contract.target)]
    staging = claim_new_path(Path("reports/adhoc"), f"retrain-batch-{stamp}", directory=True)
    candidate = staging / "batch.csv"
    rows[columns].to_csv(candidate, index=False)
    outcome = validate_file(candidate, contract, 1, staging)
    if not outcome.success:
        raise DataValidationError(
            "the labelled rows break the data contract; nothing was stored\n"
            + format_outcome(outcome)
        )
    # Claimed only once the rows passed: a refused batch leaves nothing in the training pool.
    path = claim_new_path(settings.monitor.labelled_dir, f"batch-{stamp}", ".csv")
    shutil.copyfile(candidate, path)
    return path


def _quality_gate_refused_since(verdict_file: Path, started: float) -> bool:
    """Whether evaluate wrote a failed verdict after `started` (the gate, not a crash)."""
    try:
        verdict = verdict_file.stat().st_mtime >= started and not json.loads(
            verdict_file.read_text()
        ).get("passed", True)
    except (OSError, ValueError):
        return False
    return bool(verdict)


def run_retrain(settings: Settings, contract: Contract, rows: pd.DataFrame) -> RetrainResult:
    """Store the labelled rows, run `dvc repro`, and report the gate's decision."""
    if rows.empty:
        raise ProjectError("no labelled rows to retrain on")
    before = champion_version(settings)
    fresh = new_rows(rows, settings, contract)
    if fresh.rows.empty:
        return RetrainResult(None, 0, before, before, fresh.skipped())
    path = store_batch(fresh.rows, settings, contract, datetime.now(UTC))
    # dvc.yaml's stages call this project's console script: put its environment first on
    # PATH, so retraining works when the CLI is run from .venv/bin without activation.
    scripts = Path(sys.executable).parent
    search_path = os.pathsep.join([str(scripts), os.environ.get("PATH", "")])
    environment = {**os.environ, "PATH": search_path}
    dvc = scripts / "dvc"
    command = [str(dvc) if dvc.exists() else "dvc", "repro"]
    started = time.time()
    exit_code = run_as_group(command, environment, "the `dvc repro` it started")
    stored = f"stored {len(fresh.rows)} labelled rows in {path}{fresh.skipped()}"
    if exit_code != 0:
        if _quality_gate_refused_since(settings.evaluate.metrics_file, started):
            raise QualityGateError(
                f"the retrained model missed the quality gate (see above); champion "
                f"v{before} stays; {stored}, kept for the next attempt"
            )
        raise ProjectError(
            f"`dvc repro` stopped (exit {exit_code}; see its output above); {stored}, "
            f"the champion is unchanged (v{before}), and `dvc checkout` restores the "
            "pipeline's last outputs"
        )
    return RetrainResult(path, len(fresh.rows), before, champion_version(settings), fresh.skipped())
