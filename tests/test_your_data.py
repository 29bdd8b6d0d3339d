"""Your data, any shape: a baked project follows the README's "Use your own data" steps verbatim
on a dataset that is not its sample, with no edit under src/.

The dataset is built here from scikit-learn's wine data (not either bundled sample): three
cultivars as string labels, a text category, an integer code that pandas reads as floats
(a blank beside it), blanks in a numeric column, a column name with regex characters, one
with a decomposed accent (e + U+0301, as some editors write "é"), free text the contract
leaves out, duplicate rows and rows without a label. The classification project predicts
the cultivar (multiclass); the regression project predicts the alcohol content.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
from conftest import (
    bake,
    free_port,
    git,
    run,
    run_unchecked,
    tasks_grouped,
    uv_executable,
    wait_until_ready,
)

pytestmark = pytest.mark.slow
CLI = "my_ml_service"
DATASET = "data/external/wine.csv"
TARGETS = {"classification": "cultivar", "regression": "alcohol"}
MAKE_DATASET = """
import sys
import numpy as np
import pandas as pd
from sklearn.datasets import load_wine

frame = load_wine(as_frame=True).frame.rename(columns=lambda name: name.replace("/", "_"))
rng = np.random.default_rng(0)
frame["cultivar"] = frame.pop("target").map({0: "barolo", 1: "grignolino", 2: "barbera"})
frame["cellar"] = np.where(frame["proline"] > 750, "north", "south")
frame["vintage_band"] = (frame["color_intensity"] // 3 + 1).clip(1, 4)
for column in ("cellar", "vintage_band", "magnesium"):
    frame.loc[rng.random(len(frame)) < 0.05, column] = np.nan
renamed = {"od280_od315_of_diluted_wines": "od280/od315 (diluted)", "hue": "teinte\u0301e"}
frame = frame.rename(columns=renamed)  # regex characters; an accent typed as e + U+0301
frame["tasting_note"] = [f"note {row}: {'dry' if row % 3 else 'round'}" for row in frame.index]
frame = pd.concat([frame, frame.iloc[:4]], ignore_index=True)  # duplicate rows
frame.loc[[10, 70, 140], "cultivar"] = np.nan  # no label: a feature's blanks, or left out
frame.loc[[20, 90, 160], "alcohol"] = np.nan
frame.to_csv(sys.argv[1], index=False)
"""


def readme_commands(project: Path) -> list[str]:
    """The shell commands of the generated README's "Use your own data" section, in order."""
    text = (project / "README.md").read_text()
    section = text.split("## Use your own data", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"`((?:uv run|make|cp) [^`]+)`", section)


def set_params(project: Path, source: str) -> None:
    """Step 4: the data source, and no absolute thresholds (they suit the sample)."""
    params = project / "params.yaml"
    text = params.read_text()
    text = re.sub(r"(?m)^  source: .*$", f"  source: {source}", text)
    text = re.sub(r"(?m)^  thresholds:\n(    .*\n)+", "  thresholds: {}\n", text)
    params.write_text(text)


@pytest.fixture(scope="module", params=tasks_grouped("your-data"))
def swapped(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose pipeline ran on the wine data, following the README's steps."""
    task = request.param
    project = bake(tmp_path_factory.mktemp(task), task=task)
    run(["make", "setup", f"UV={uv_executable()}"], project)
    git(project, "add", "-A")
    git(project, "commit", "-qm", "Baked from the template")
    mine = tmp_path_factory.mktemp("download") / "mine.csv"
    run([uv_executable(), "run", "--locked", "python", "-c", MAKE_DATASET, str(mine)], project)
    commands = readme_commands(project)
    assert commands[0].startswith("cp ~/mine.csv data/external/mine.csv"), commands
    (project / DATASET).write_bytes(mine.read_bytes())  # step 1, with our file's name
    profile = (
        commands[1].replace("data/external/mine.csv", DATASET).replace("<column>", TARGETS[task])
    )
    profiled = run(
        ["bash", "-c", profile.replace("uv run", f"{uv_executable()} run --locked", 1)], project
    )
    assert "left out tasting_note: free text" in profiled, profiled
    assert f"3 of 182 rows have no {TARGETS[task]}" in profiled, profiled
    set_params(project, DATASET)  # steps 3-4
    pipeline = run(["make", "pipeline", f"UV={uv_executable()}"], project)  # step 6
    assert "is the new champion" in pipeline
    assert "left out 3 rows of data.source without a" in pipeline
    return project


def post(url: str, record: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        url, json.dumps(record).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, object] = json.loads(response.read())
        return answer


def test_the_contract_describes_the_new_data(swapped: Path) -> None:
    contract = (swapped / "contract.yaml").read_text()
    assert (
        "{name: vintage_band, type: category, nullable: true, allowed: ['1', '2', '3', '4']}"
        in (contract)
    )
    assert "{name: cellar, type: category, nullable: true, allowed: [north, south]}" in contract
    assert re.search(r"\{name: magnesium, type: int, nullable: true", contract)
    assert "{name: teint\u00e9e, type: float" in contract  # one form for every reader (NFC)
    card = (swapped / "models/champion/model_card.md").read_text()
    assert "Dataset `wine`:" in card
    assert "- `cellar` (category, nullable)" in card
    assert "breast" not in card
    assert "diabetes" not in card


def test_the_service_monitor_and_project_tests_follow(swapped: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(swapped / ".venv/bin" / CLI), "serve", "--port", str(port)],
        cwd=swapped,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_ready(f"{url}/ready", server)
        example = json.loads(urllib.request.urlopen(f"{url}/openapi.json").read())
        record = example["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"][
            "examples"
        ]["one record"]["value"]
        answers = [
            post(f"{url}/predict", {**record, "vintage_band": code, "magnesium": None})
            for code in (3, 3.0, "3")
        ]
        assert len({json.dumps(answer["predictions"]) for answer in answers}) == 1
        # Text categories with gaps convert: the export passed parity and ONNX answers.
        info = json.loads(urllib.request.urlopen(f"{url}/model").read())
        assert info["runtime"] == "onnx", (swapped / "models/champion/metadata.json").read_text()
        cli = [uv_executable(), "run", "--locked", CLI]
        run([*cli, "simulate", "clean", "--url", url], swapped)
        clean = run_unchecked([*cli, "monitor"], swapped)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        sent = run([*cli, "simulate", "drifted", "--url", url, "--seed", "1"], swapped)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    rows = re.search(r"drifted batch of (\d+) rows", sent)
    assert rows, sent
    drifted = run_unchecked([*cli, "monitor", "--window", rows.group(1)], swapped)
    assert drifted.returncode == 3, drifted.stdout + drifted.stderr
    changed = json.loads(
        sorted((swapped / "reports/monitoring").glob("*/summary.json"))[-1].read_text()
    )
    assert changed["drifted_columns"], changed
    assert ", ".join(changed["drifted_columns"]) in drifted.stdout
    # The README's loop closes on data with columns outside the contract (the free text).
    labels = "data/simulated/drifted-1.labels.csv"
    retrained = run_unchecked([*cli, "retrain", "--labels", labels], swapped)
    assert retrained.returncode in (0, 1), retrained.stdout + retrained.stderr  # 1: gate refused
    assert "labelled rows as batch" in retrained.stdout, retrained.stdout + retrained.stderr
    assert "Data and pipelines are up to date." in run([*cli[:-1], "dvc", "status"], swapped)

    tests = run_unchecked(["make", "test-fast", f"UV={uv_executable()}"], swapped, timeout=1500)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    skipped = re.findall(r"SKIPPED \[\d+\] (.*)", tests.stdout)
    assert all("bundled sample" in reason for reason in skipped), skipped
