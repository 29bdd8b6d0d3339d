"""Labelled batches: content ids, recorded states, quarantine, re-admission, deletion."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.batches import (
    ACCEPTED,
    DELETED,
    PENDING,
    QUARANTINED,
    content_id,
    decide,
    delete,
    load_batches,
    readmit,
    store_batch,
)
from {{ cookiecutter.package_name }}.contract import (
    Contract,
)
from {{ cookiecutter.package_name }}.errors import (
    ProjectError,
)
from {{ cookiecutter.package_name }}.retrain import (
    labelled_file,
    new_rows,
)
from {{ cookiecutter.package_name }}.settings import (
    Settings,
    env_var_name,
)
from {{ cookiecutter.package_name }}.tabular import (
    read_table,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def local(settings: Settings, tmp_path: Path) -> Settings:
    """Settings whose pool, quarantine and records live in the test's folder."""
    monitor = settings.monitor.model_copy(
        update={
            "labelled_dir": tmp_path / "labelled",
            "quarantine_dir": tmp_path / "quarantine",
            "batches_file": tmp_path / "batches.json",
        }
    )
    data = settings.data.model_copy(update={"train_path": tmp_path / "train.csv"})
    return settings.model_copy(update={"monitor": monitor, "data": data})


@pytest.fixture
def rows(sample: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Twenty labelled rows of the project's data, as `retrain` stores them: the first ones, so
    on data sorted by its label (as scikit-learn's wine and iris are) all of one class."""
    names = [*contract.feature_names, contract.target.name]
    return sample[names].head(20).reset_index(drop=True)


def put_in_pool(local: Settings, rows: pd.DataFrame, name: str) -> Path:
    """A batch file in the pool with no record, as an interrupted retrain leaves it."""
    local.monitor.labelled_dir.mkdir(parents=True, exist_ok=True)
    path = local.monitor.labelled_dir / name
    rows.to_csv(path, index=False)
    return path


def test_a_batch_is_identified_by_its_content(rows: pd.DataFrame, contract: Contract) -> None:
    same = content_id(rows, contract)
    assert content_id(rows.iloc[::-1], contract) == same  # order does not matter
    relabelled = rows.copy()
    target = contract.target.name
    labels = relabelled[target].astype(object).tolist()
    others = [value for value in contract.target.allowed or [] if str(value) != str(labels[0])]
    labels[0] = others[0] if others else float(labels[0]) + 1
    relabelled[target] = labels
    assert content_id(relabelled, contract) != same  # a label is content
    assert content_id(rows.head(19), contract) != same


def test_an_unrecorded_file_is_adopted_as_pending_then_decided(
    local: Settings, rows: pd.DataFrame, contract: Contract
) -> None:
    path = put_in_pool(local, rows, "batch-x.csv")
    (batch,) = load_batches(local, contract)
    assert batch.state == PENDING
    assert "without a record" in batch.reason
    assert batch.id == content_id(read_table(path, contract), contract)
    (accepted,) = decide(local, contract, {batch.id}, ACCEPTED, "v2 promoted")
    assert accepted.state == ACCEPTED
    recorded = json.loads(local.monitor.batches_file.read_text())
    assert [entry["state"] for entry in recorded] == [ACCEPTED]
    assert not list(local.monitor.batches_file.parent.glob(".*.tmp"))  # renamed into place
    # A decided batch is not decided again.
    assert decide(local, contract, {batch.id}, QUARANTINED, "late") == []


def test_quarantine_takes_a_batch_out_of_the_pool_until_readmitted(
    local: Settings, rows: pd.DataFrame, contract: Contract
) -> None:
    path = put_in_pool(local, rows, "batch-y.csv")
    (batch,) = load_batches(local, contract)
    decide(local, contract, {batch.id}, QUARANTINED, "its model missed the quality gate")
    assert not path.exists()
    assert (local.monitor.quarantine_dir / path.name).is_file()
    assert not list(local.monitor.labelled_dir.glob("*.csv"))  # prepare no longer reads it
    # The same rows sent again are not stored again: they are counted as quarantined.
    again = new_rows(rows, local, contract)
    assert again.rows.empty
    assert again.quarantined == len(rows)
    assert "in a quarantined batch" in again.skipped()
    # A person re-admits it by a short id; it is back in the pool, accepted, with the reason.
    back = readmit(local, contract, batch.id[:6])
    assert back.state == ACCEPTED
    assert "re-admitted by" in back.reason
    assert path.is_file()
    with pytest.raises(ProjectError, match="not quarantined"):
        readmit(local, contract, batch.id)


def test_delete_removes_the_file_and_keeps_the_record(
    local: Settings, rows: pd.DataFrame, contract: Contract
) -> None:
    path = put_in_pool(local, rows, "batch-z.csv")
    (batch,) = load_batches(local, contract)
    gone = delete(local, contract, batch.id)
    assert gone.state == DELETED
    assert not path.exists()
    assert [b.state for b in load_batches(local, contract)] == [DELETED]
    with pytest.raises(ProjectError, match="no batch matches 'nope'"):
        delete(local, contract, "nope")


def test_an_unreadable_record_is_one_clear_error(local: Settings, contract: Contract) -> None:
    local.monitor.batches_file.write_text("{not json")
    with pytest.raises(ProjectError, match=r"batches\.json is unreadable"):
        load_batches(local, contract)


def test_a_stored_batch_is_recorded_once_as_pending(
    local: Settings,
    rows: pd.DataFrame,
    contract: Contract,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # the contract check's report goes to reports/adhoc here
    batch = store_batch(local, contract, rows)
    assert batch.state == PENDING
    assert Path(batch.file).name.endswith(f"-{batch.id}.csv")
    assert [(b.id, b.state) for b in load_batches(local, contract)] == [(batch.id, PENDING)]
    assert not list(local.monitor.labelled_dir.glob(".*"))  # no temporary file left


STORE_ON_A_FULL_DISK = """
import resource, signal, sys
import pandas as pd
from {{ cookiecutter.package_name }}.batches import store_batch
from {{ cookiecutter.package_name }}.contract import load_contract
from {{ cookiecutter.package_name }}.errors import ProjectError
from {{ cookiecutter.package_name }}.settings import load_settings
settings, rows = load_settings(), pd.read_csv(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail (EFBIG), like ENOSPC
resource.setrlimit(resource.RLIMIT_FSIZE, (2_000, 2_000))
try:
    store_batch(settings, load_contract(settings.contract_path), rows)
except ProjectError as error:
    print(error)
"""


def test_a_full_disk_stores_nothing_and_says_so(
    local: Settings, rows: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In a child process: the file-size limit stands in for a full disk.
    batch = tmp_path / "labelled-rows.csv"
    rows.to_csv(batch, index=False)
    for location, value in {
        ("monitor", "labelled_dir"): local.monitor.labelled_dir,
        ("monitor", "batches_file"): local.monitor.batches_file,
    }.items():
        monkeypatch.setenv(env_var_name(location), str(value))
    project = tmp_path / "project"  # the command's own settings, reports under tmp_path
    project.mkdir()
    for name in ("params.yaml", str(local.contract_path)):
        shutil.copy(PROJECT_ROOT / name, project / name)
    result = subprocess.run(
        [sys.executable, "-c", STORE_ON_A_FULL_DISK, str(batch)],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert "could not be stored (File too large" in result.stdout, result.stdout + result.stderr
    assert "nothing was stored" in result.stdout
    assert not list(local.monitor.labelled_dir.glob("*"))  # no half batch, no temporary file
    assert not local.monitor.batches_file.exists()


def test_a_batch_of_one_class_is_stored(
    local: Settings,
    rows: pd.DataFrame,
    contract: Contract,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Labels come as they come: a batch need not hold every class (the pool is checked whole)."""
    monkeypatch.chdir(tmp_path)
    target = contract.target.name
    same = rows[rows[target].astype(str) == str(rows.loc[0, target])].reset_index(drop=True)
    assert store_batch(local, contract, same).rows == len(same)


def test_a_labelled_file_leaves_out_rows_without_a_label_and_counts_them(
    rows: pd.DataFrame, contract: Contract, tmp_path: Path
) -> None:
    """`retrain --data` drops unlabelled rows as `prepare` does, instead of refusing the batch."""
    target = contract.target.name
    path = tmp_path / "labelled.csv"
    blank = rows.astype({target: object})
    blank.loc[[1, 4], target] = None
    blank.assign(note="free text").to_csv(path, index=False)
    kept, unlabelled = labelled_file(path, contract)
    assert unlabelled == 2
    assert len(kept) == len(rows) - 2
    assert list(kept.columns) == [column.name for column in contract.columns]
    assert kept[target].notna().all()
    blank.assign(**{target: None}).to_csv(path, index=False)
    with pytest.raises(ProjectError, match=rf"none of its {len(rows)} rows has a"):
        labelled_file(path, contract)
    rows.drop(columns=[target]).to_csv(path, index=False)
    with pytest.raises(ProjectError, match=rf"labelled\.csv: missing contract columns {target}"):
        labelled_file(path, contract)
