"""Command `retrain`: add newly labelled rows to the training pool and re-run the pipeline.

The rows pass the data contract (Great Expectations) before they are stored, so a bad batch
never reaches the pipeline. Rows already in the pool or in a quarantined batch are skipped. The
new ones go into `monitor.labelled_dir` as a pending batch (batches.py), a dependency of
`prepare`, so `dvc repro` rebuilds the training set (a DVC output, versioned in dvc.lock and the
cache), trains, evaluates and lets the promotion gate decide: the champion changes only if the
new model is better. The outcome decides the batch: accepted, or quarantined (out of the pool,
and the pipeline re-run without it). Stopped before deciding, the batch stays pending and the
next `retrain` decides it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .batches import ACCEPTED, PENDING, QUARANTINED, Batch, decide, load_batches, store_batch
from .bundle import Champion, ModelNotReadyError, load_champion, read_metadata
from .contract import Contract
from .errors import ProjectError, QualityGateError
from .monitoring.records import PREDICTION
from .monitoring.window import Window
from .pipeline import run_pipeline
from .prepare import labelled_only
from .rows import row_keys
from .settings import Settings
from .tabular import read_table, require_columns
from .task import Task


@dataclass(frozen=True)
class NewRows:
    """A labelled batch's rows that are new to the training data, and what was skipped."""

    rows: pd.DataFrame
    known: int
    repeated: int
    quarantined: int = 0

    def skipped(self) -> str:
        """What was left out and why, for the CLI ('' when nothing was)."""
        parts = []
        if self.known:
            parts.append(f"{self.known} already in the training data")
        if self.quarantined:
            parts.append(f"{self.quarantined} in a quarantined batch (see `batches list`)")
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
    monitor = settings.monitor
    stored = [settings.data.train_path, *sorted(monitor.labelled_dir.glob("*.csv"))]
    is_known = keys.isin(_keys_in(stored, contract))
    is_quarantined = keys.isin(_keys_in(sorted(monitor.quarantine_dir.glob("*.csv")), contract))
    is_quarantined &= ~is_known
    repeated = keys.duplicated() & ~is_known & ~is_quarantined
    fresh = rows[~is_known & ~is_quarantined & ~repeated].reset_index(drop=True)
    return NewRows(fresh, int(is_known.sum()), int(repeated.sum()), int(is_quarantined.sum()))


def _keys_in(paths: list[Path], contract: Contract) -> set[str]:
    keys: set[str] = set()
    for path in (path for path in paths if path.is_file()):
        keys.update(row_keys(read_table(path, contract), contract.feature_names))
    return keys


@dataclass(frozen=True)
class RetrainResult:
    """What retraining stored, what the gate decided, and the batches' new state."""

    stored: Batch | None
    champion_before: int | None
    champion_after: int | None
    skipped: str = ""
    decided: str = ""  # e.g. "batch 1a2b... accepted"
    ran: bool = True  # whether the pipeline ran (not when every batch was refused before it)

    @property
    def champion_changed(self) -> bool:
        """Whether the promotion gate replaced the champion."""
        return self.champion_after != self.champion_before

    def message(self) -> str:
        """One line for the CLI."""
        if not self.decided:
            return (
                f"nothing new to learn from{self.skipped}: nothing stored, the pipeline did not "
                f"run, the champion is unchanged (v{self.champion_before})"
            )
        if not self.ran:
            return (
                f"{self.decided}{self.skipped}; the pipeline did not run, the champion is "
                f"unchanged (v{self.champion_before})"
            )
        stored = (
            f"stored {self.stored.rows} labelled rows as batch {self.stored.id} "
            f"({self.stored.file}){self.skipped}"
            if self.stored
            else f"no new rows{self.skipped}"
        )
        if self.champion_changed:
            gate = f"the gate promoted v{self.champion_after} (was v{self.champion_before})"
        else:
            gate = f"the gate kept v{self.champion_before}: the new model was not better"
        return f"{stored}; {gate}; {self.decided}"


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


def labelled_file(path: Path, contract: Contract) -> tuple[pd.DataFrame, int]:
    """A labelled CSV's contract columns in its rows with a label, and how many had none.

    A row without a label is left out (counted), as `prepare` leaves it out of the source.
    """
    rows = read_table(path, contract)
    names = [column.name for column in contract.columns]
    fix = "give the file the contract's features and its target (extra columns are ignored)"
    require_columns(rows.columns, names, path, fix)
    labelled = labelled_only(rows[names], contract)
    if labelled.empty and len(rows):
        raise ProjectError(
            f"{path}: none of its {len(rows)} rows has a {contract.target.name} value; "
            "fix: fill in the labels"
        )
    return labelled, len(rows) - len(labelled)


def champion_version(settings: Settings) -> int | None:
    """The exported champion's registry version, or None before the first promotion."""
    metadata = read_metadata(settings.registry.export_dir)
    return None if metadata is None else int(metadata["version"])


def _record_since(path: Path, started: float) -> dict[str, Any] | None:
    """The JSON record a stage wrote at `path` after `started`; None if none or unreadable."""
    try:
        if path.stat().st_mtime < started:
            return None
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _quality_gate_refused_since(verdict_file: Path, started: float) -> bool:
    """Whether evaluate wrote a failed verdict after `started` (the gate, not a crash)."""
    verdict = _record_since(verdict_file, started)
    return verdict is not None and not verdict.get("passed", True)


def _loss_beyond_tolerance(settings: Settings, started: float) -> str | None:
    """Why the challenger lost to the champion by more than the tolerance; None if it did not.

    Read from the promotion gate's record of this run: the same held-out rows for both.
    """
    comparison = (_record_since(settings.evaluate.promotion_file, started) or {}).get(
        "comparison"
    ) or {}
    try:
        gain, champion = float(comparison["gain"]), float(comparison["champion"])
    except (KeyError, TypeError, ValueError):
        return None
    allowed = settings.monitor.quarantine_tolerance * max(abs(champion), 1e-12)
    if gain >= -allowed:
        return None
    return (
        f"its model lost to the champion by {-gain:.4f} {comparison.get('metric', '')} on the "
        f"same {comparison.get('rows', '?')} held-out rows, more than the tolerance "
        f"({settings.monitor.quarantine_tolerance:.0%} of {champion:.4f})"
    )


def label_disagreement(settings: Settings, contract: Contract, rows: pd.DataFrame) -> str | None:
    """Why the batch's labels are suspect (the champion disagrees with too many); None if not.

    Off unless `monitor.max_label_disagreement` is set: after a real change in the world
    (concept drift) labels rightly disagree with the old model, and that batch is what
    retraining needs.
    """
    limit = settings.monitor.max_label_disagreement
    bundle = settings.registry.export_dir
    if limit is None or rows.empty or read_metadata(bundle) is None:
        return None
    try:
        champion = load_champion(bundle, settings.task)
    except ModelNotReadyError as error:
        raise ProjectError(
            f"the labels cannot be checked against the champion: {error}; nothing was stored"
        ) from None
    share, usual = disagreement(settings, contract, champion, rows)
    if share <= limit:
        return None
    return (
        f"its labels disagree with champion v{champion.version} on {share:.0%} of its "
        f"{len(rows)} rows ({usual:.0%} of its held-out rows), more than "
        f"monitor.max_label_disagreement ({limit:.0%})"
    )


def disagreement(
    settings: Settings, contract: Contract, champion: Champion, rows: pd.DataFrame
) -> tuple[float, float]:
    """The shares of `rows`, and of the champion's held-out rows, whose label it disagrees with.

    A row disagrees when the champion predicts another class, or misses the number by more than
    on 19 of 20 of its held-out rows.
    """
    task, target = settings.task, contract.target.name
    held_out = _errors(champion, task, read_table(settings.data.test_path, contract), target)
    usual = task.usual_error(held_out)
    errors = _errors(champion, task, rows, target)
    return float((errors > usual).mean()), float((held_out > usual).mean())


def _errors(champion: Champion, task: Task, rows: pd.DataFrame, target: str) -> pd.Series:
    predicted = pd.Series([prediction.value for prediction in champion.predict_frame(rows)])
    return task.row_errors(rows[target].reset_index(drop=True), predicted)


def _quarantine(settings: Settings, contract: Contract, ids: set[str], reason: str) -> str:
    """Take the batches out of the pool and rebuild the pipeline's outputs without them."""
    decided = decide(settings, contract, ids, QUARANTINED, reason)
    names = ", ".join(batch.id for batch in decided)
    if run_pipeline(settings) != 0:
        raise ProjectError(
            f"batch {names} quarantined ({reason}), but re-running the pipeline without it "
            "failed (see above); fix: `dvc repro`"
        )
    return f"batch {names} quarantined: {reason}; the pipeline was re-run without it"


def run_retrain(settings: Settings, contract: Contract, rows: pd.DataFrame) -> RetrainResult:
    """Store the new labelled rows as a pending batch, run `dvc repro`, decide the batch.

    Batches left pending by an interrupted retrain are decided with it (never stored again).
    """
    if rows.empty:
        raise ProjectError("no labelled rows to retrain on")
    before = champion_version(settings)
    fresh = new_rows(rows, settings, contract)
    pending = {b.id for b in load_batches(settings, contract) if b.state == PENDING}
    if fresh.rows.empty and not pending:
        return RetrainResult(None, before, before, fresh.skipped())
    stored, refused = _store_new(settings, contract, fresh.rows)
    ids = pending | ({stored.id} if stored and not refused else set())
    if not ids:
        return RetrainResult(stored, before, before, fresh.skipped(), refused, ran=False)
    after, decided = _pipeline_decides(settings, contract, ids, before)
    outcome = "; ".join(part for part in (refused, decided) if part)
    return RetrainResult(stored, before, after, fresh.skipped(), outcome)


def _store_new(
    settings: Settings, contract: Contract, rows: pd.DataFrame
) -> tuple[Batch | None, str]:
    """The stored batch (None without new rows), and why it went straight to quarantine ('')."""
    if rows.empty:
        return None, ""
    suspect = label_disagreement(settings, contract, rows)
    stored = store_batch(settings, contract, rows)
    if suspect is None:
        return stored, ""
    decide(settings, contract, {stored.id}, QUARANTINED, suspect)
    return stored, f"batch {stored.id} quarantined: {suspect}"


def _pipeline_decides(
    settings: Settings, contract: Contract, ids: set[str], before: int | None
) -> tuple[int | None, str]:
    """Run the pipeline with the pending batches `ids`; the champion after, and their fate."""
    started = time.time()
    exit_code = run_pipeline(settings)
    if exit_code != 0 and _quality_gate_refused_since(settings.evaluate.metrics_file, started):
        why = "its model missed the quality gate (evaluate)"
        raise QualityGateError(
            f"the retrained model missed the quality gate (see above); champion v{before} "
            f"stays; {_quarantine(settings, contract, ids, why)}"
        )
    if exit_code != 0:
        raise ProjectError(
            f"`dvc repro` stopped (exit {exit_code}; see its output above); the champion is "
            f"unchanged (v{before}); batch {', '.join(sorted(ids))} stays pending: run "
            "`retrain` again (with the same data) to decide it"
        )
    after = champion_version(settings)
    lost = None if after != before else _loss_beyond_tolerance(settings, started)
    if lost is not None:
        return after, _quarantine(settings, contract, ids, lost)
    why = f"v{after} promoted" if after != before else "its model was within the tolerance"
    accepted = decide(settings, contract, ids, ACCEPTED, why)
    return after, f"batch {', '.join(b.id for b in accepted)} accepted ({why})"
