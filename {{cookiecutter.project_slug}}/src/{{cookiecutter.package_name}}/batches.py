"""Labelled batches: each identified by its content, with a recorded state and reason.

`retrain` stores a batch as pending in `monitor.labelled_dir` (the training pool); the pipeline's
outcome decides it: accepted (its model was promoted, or lost to the champion by no more than
`monitor.quarantine_tolerance`: the data is sound) or quarantined (its model missed the quality
gate or lost by more): the file moves to `monitor.quarantine_dir`, out of the pool. The states
live in `monitor.batches_file`, rewritten whole (temporary file, then rename) on every change.
A batch file found in the pool with no record (a retrain stopped between storing and recording)
is adopted as pending, so the next `retrain` decides it instead of storing it again.
"""

from __future__ import annotations

import getpass
import hashlib
import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from .contract import Contract
from .errors import DataValidationError, ProjectError
from .files import claim_new_path, utc_stamp, write_whole
from .rows import row_keys
from .settings import Settings
from .tabular import read_table

PENDING, ACCEPTED, QUARANTINED, DELETED = "pending", "accepted", "quarantined", "deleted"
_ID_LENGTH = 12


@dataclass(frozen=True)
class Batch:
    """One labelled batch: its content id, file, size, state and why it is in that state."""

    id: str
    file: str
    rows: int
    state: str
    stored_at: str
    reason: str = ""
    decided_at: str = ""

    def line(self) -> str:
        """One line for `batches list`."""
        return (
            f"{self.id}  {self.state:<11}  {self.rows:>6} rows  {self.stored_at[:19]}  {self.file}"
            + (f"  ({self.reason})" if self.reason else "")
        )


def content_id(rows: pd.DataFrame, contract: Contract) -> str:
    """A batch's id: a hash of its rows (features and label), whatever their order."""
    keys = row_keys(rows, [*contract.feature_names, contract.target.name])
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:_ID_LENGTH]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def load_batches(settings: Settings, contract: Contract) -> list[Batch]:
    """The recorded batches, with any unrecorded file in the pool adopted as pending."""
    path = settings.monitor.batches_file
    try:
        batches = [Batch(**entry) for entry in json.loads(path.read_text(encoding="utf-8"))]
    except FileNotFoundError:
        batches = []
    except (OSError, ValueError, TypeError) as error:
        raise ProjectError(
            f"{path} is unreadable ({error}); fix: restore it from git or delete it (the "
            "batches in the labelled folder are then adopted as pending)"
        ) from None
    known = {batch.file for batch in batches}
    for file in sorted(settings.monitor.labelled_dir.glob("*.csv")):
        if str(file) not in known:
            rows = read_table(file, contract)
            batches.append(
                Batch(
                    content_id(rows, contract),
                    str(file),
                    len(rows),
                    PENDING,
                    _now(),
                    "found in the pool without a record: a retrain stopped before deciding",
                )
            )
    return batches


def save_batches(settings: Settings, batches: list[Batch]) -> None:
    """Write every record at once: a temporary file renamed over the old one."""
    text = json.dumps([asdict(batch) for batch in batches], indent=2) + "\n"
    write_whole(settings.monitor.batches_file, text)


def store_batch(settings: Settings, contract: Contract, rows: pd.DataFrame) -> Batch:
    """Validate `rows` against the contract, then add them to the pool as a pending batch.

    Written under a temporary name and renamed: the pool never holds half a batch, and a full
    disk is one line with nothing stored.
    """
    try:
        return _store(settings, contract, rows)
    except OSError as error:
        for partial in settings.monitor.labelled_dir.glob(".batch-*.csv.tmp"):
            partial.unlink(missing_ok=True)
        raise ProjectError(
            f"the labelled rows could not be stored ({error.strerror or error}"
            f"{f': {error.filename}' if error.filename else ''}); nothing was stored; fix: free "
            "space or make the data folder writable, then rerun"
        ) from None


def _store(settings: Settings, contract: Contract, rows: pd.DataFrame) -> Batch:
    from .validate import format_outcome, validate_file

    stamp = utc_stamp(datetime.now(UTC))
    columns = [column.name for column in (*contract.features, contract.target)]
    staging = claim_new_path(Path("reports/adhoc"), f"retrain-batch-{stamp}", directory=True)
    candidate = staging / "batch.csv"
    rows[columns].to_csv(candidate, index=False)
    # A batch may hold a few classes only; the pool it joins is checked whole by `validate`.
    outcome = validate_file(candidate, contract, 1, staging, every_class=False)
    if not outcome.success:
        raise DataValidationError(
            "the labelled rows break the data contract; nothing was stored\n"
            + format_outcome(outcome)
        )
    batch_id = content_id(rows, contract)
    recorded = load_batches(settings, contract)  # before the new file is in the pool
    folder = settings.monitor.labelled_dir
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".batch-{stamp}-{batch_id}.csv.tmp"
    temporary.write_bytes(candidate.read_bytes())
    path = claim_new_path(folder, f"batch-{stamp}-{batch_id}", ".csv")
    temporary.replace(path)
    batch = Batch(batch_id, str(path), len(rows), PENDING, _now())
    save_batches(settings, [*recorded, batch])
    return batch


def decide(
    settings: Settings, contract: Contract, ids: set[str], state: str, reason: str
) -> list[Batch]:
    """Set the state of the pending batches in `ids`; quarantined ones leave the pool."""
    batches, decided = [], []
    for batch in load_batches(settings, contract):
        if batch.id in ids and batch.state == PENDING:
            file = _quarantined(settings, Path(batch.file)) if state == QUARANTINED else batch.file
            changed = replace(batch, state=state, reason=reason, decided_at=_now(), file=str(file))
            decided.append(changed)
            batches.append(changed)
        else:
            batches.append(batch)
    save_batches(settings, batches)
    return decided


def _quarantined(settings: Settings, file: Path) -> Path:
    target = settings.monitor.quarantine_dir / file.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if file.exists():
        file.replace(target)
    return target


def find(batches: list[Batch], wanted: str) -> Batch:
    """The batch whose id starts with `wanted` (or whose file name is it); one, or an error."""
    found = [b for b in batches if b.id.startswith(wanted) or Path(b.file).name == wanted]
    if len(found) != 1:
        ids = ", ".join(batch.id for batch in batches) or "none"
        raise ProjectError(
            f"{'no' if not found else 'more than one'} batch matches {wanted!r}; fix: give "
            f"one of the ids `batches list` shows ({ids})"
        )
    return found[0]


def readmit(settings: Settings, contract: Contract, wanted: str) -> Batch:
    """Put a quarantined batch back in the pool, accepted by the person who ran the command."""
    batches = load_batches(settings, contract)
    batch = find(batches, wanted)
    if batch.state != QUARANTINED:
        raise ProjectError(f"batch {batch.id} is {batch.state}, not quarantined; nothing to do")
    source = Path(batch.file)
    target = settings.monitor.labelled_dir / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    source.replace(target)
    reason = f"re-admitted by {getpass.getuser()} (was: {batch.reason})"
    changed = replace(batch, state=ACCEPTED, file=str(target), reason=reason, decided_at=_now())
    save_batches(settings, [changed if b is batch else b for b in batches])
    return changed


def delete(settings: Settings, contract: Contract, wanted: str) -> Batch:
    """Delete a batch's file; its record stays, marked deleted, so the history is kept."""
    batches = load_batches(settings, contract)
    batch = find(batches, wanted)
    if batch.state == DELETED:
        raise ProjectError(f"batch {batch.id} was already deleted")
    Path(batch.file).unlink(missing_ok=True)
    reason = f"deleted by {getpass.getuser()} (was {batch.state})"
    changed = replace(batch, state=DELETED, reason=reason, decided_at=_now())
    save_batches(settings, [changed if b is batch else b for b in batches])
    return changed
