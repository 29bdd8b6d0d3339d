"""The champion bundle: swapped in atomically, verified as a whole, loaded by one function."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pandas as pd

from {{ cookiecutter.package_name }}.bundle import (
    ModelNotReadyError,
    install,
    load_champion,
)
from {{ cookiecutter.package_name }}.contract import (
    Contract,
)
from {{ cookiecutter.package_name }}.settings import (
    Settings,
)
from {{ cookiecutter.package_name }}.train import (
    fit_pipeline,
)

from ..conftest import export_bundle

READS = 40


def test_a_reader_never_sees_a_missing_or_mixed_bundle(
    settings: Settings, contract: Contract, sample: pd.DataFrame, tmp_path: Path
) -> None:
    # Two versions with different model files: a mixed read would fail its checksum.
    sources = [
        export_bundle(
            fit_pipeline(settings, contract, rows), contract, settings.task, tmp_path / name, name
        )
        for name, rows in (("1", sample.iloc[::2]), ("2", sample.iloc[1::2]))
    ]
    target = tmp_path / "models" / "champion"
    target.parent.mkdir()
    shutil.copytree(sources[0], target)
    enough, loaded = threading.Event(), threading.Event()

    def swap_after_each_read() -> None:
        # Each swap lands while the reader is busy with its next load; one swap per completed
        # load, as promotions are rare next to reads (a reader is never starved, whatever the
        # machine's speed).
        index = 0
        while not enough.is_set():
            if not loaded.wait(timeout=1):
                continue
            loaded.clear()
            staging = target.parent / f".staging-{index}"
            shutil.copytree(sources[index % 2], staging)
            install(staging, target)
            index += 1

    writer = threading.Thread(target=swap_after_each_read)
    writer.start()
    seen: list[str] = []
    failures: list[str] = []
    try:
        while len(seen) + len(failures) < READS:
            try:
                seen.append(load_champion(target, settings.task).version)
            except ModelNotReadyError as error:
                failures.append(str(error))
            loaded.set()
    finally:
        enough.set()
        writer.join()
    assert failures == []
    assert set(seen) == {"1", "2"}  # the swaps happened while it read
    assert sorted(path.name for path in target.parent.iterdir()) == ["champion"]
