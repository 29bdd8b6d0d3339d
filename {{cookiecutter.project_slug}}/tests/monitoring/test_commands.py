"""The monitoring commands as a user runs them: simulate, monitor (exit codes), alerts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from {{ cookiecutter.package_name }}.cli import (
    app,
)
from {{ cookiecutter.package_name }}.errors import (
    ExitCode,
)
from {{ cookiecutter.package_name }}.settings import (
    env_var_name,
)

from .conftest import Webhook

runner = CliRunner()


@pytest.fixture
def monitored(deployment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project's commands pointed at the test deployment; outputs under tmp_path."""
    overrides = {
        ("data", "train_path"): deployment / "data/train.csv",
        ("data", "production_path"): deployment / "data/production.csv",
        ("registry", "export_dir"): deployment / "champion",
        ("monitor", "report_dir"): tmp_path / "reports",
        ("monitor", "metrics_file"): tmp_path / "reports/drift.prom",
    }
    for location, value in overrides.items():
        monkeypatch.setenv(env_var_name(location), str(value))
    return tmp_path


def test_simulate_writes_a_batch_and_refuses_to_overwrite_it(
    monitored: Path, deployment: Path
) -> None:
    batch = monitored / "clean.csv"
    first = runner.invoke(app, ["simulate", "clean", "--rows", "20", "--output", str(batch)])
    assert first.exit_code == 0, first.output
    content = batch.read_bytes()
    again = runner.invoke(app, ["simulate", "drifted", "--rows", "20", "--output", str(batch)])
    assert again.exit_code == 2
    assert "already exists; fix: pass --force" in again.output
    assert batch.read_bytes() == content
    # By default every held-back row, each once: labels for it add no copies of a row.
    whole = monitored / "whole.csv"
    assert runner.invoke(app, ["simulate", "clean", "--output", str(whole)]).exit_code == 0
    production = pd.read_csv(deployment / "data/production.csv")
    drawn = pd.read_csv(whole)
    assert len(drawn) == len(production)
    # Each once: the same rows as the batch (your data's duplicate rows are held back together).
    columns = [name for name in production.columns if name in drawn.columns]
    assert sorted(map(tuple, drawn[columns].astype(str).to_numpy())) == sorted(
        map(tuple, production[columns].astype(str).to_numpy())
    )
    more = str(len(production) + 1)
    refused = runner.invoke(app, ["simulate", "clean", "--rows", more, "--output", str(whole)])
    assert refused.exit_code == 2
    assert f"--rows {more} is more than the {len(production)} held-back" in refused.output
    asked = ["simulate", "clean", "--rows", more, "--replace", "--output", str(whole), "--force"]
    assert runner.invoke(app, asked).exit_code == 0
    unknown = runner.invoke(app, ["simulate", "sideways"])
    assert unknown.exit_code == 2
    assert "kind 'sideways' is unknown; fix: use clean or drifted" in unknown.output


def test_monitor_exits_0_on_a_clean_batch_and_3_with_an_alert_on_drift(
    monitored: Path, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env_var_name(("monitor", "webhook_url")), webhook.url)
    for kind in ("clean", "drifted"):
        made = runner.invoke(app, ["simulate", kind, "--output", str(monitored / f"{kind}.csv")])
        assert made.exit_code == 0, made.output

    clean = runner.invoke(app, ["monitor", "--data", str(monitored / "clean.csv")])
    assert clean.exit_code == 0, clean.output
    assert "no alert" in clean.output
    assert webhook.received == []

    drifted = runner.invoke(app, ["monitor", "--data", str(monitored / "drifted.csv")])
    assert drifted.exit_code == ExitCode.ALERT, drifted.output
    assert "ALERT data drift" in drifted.output
    assert "feature" in drifted.output.splitlines()[0]
    [delivered] = webhook.received
    assert "monitoring alert" in str(delivered["body"])
    assert len(list((monitored / "reports").glob("*/report.html"))) == 2


def test_an_alert_that_cannot_be_delivered_is_an_error(
    monitored: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env_var_name(("monitor", "webhook_url")), "http://127.0.0.1:9/hook")
    batch = monitored / "drifted.csv"
    runner.invoke(app, ["simulate", "drifted", "--output", str(batch)])
    result = runner.invoke(app, ["monitor", "--data", str(batch)])
    assert result.exit_code == 4, result.output
    assert "alert not delivered" in result.output


def test_monitor_names_a_missing_log(monitored: Path) -> None:
    result = runner.invoke(app, ["monitor", "--log", str(monitored / "no-log")])
    assert result.exit_code == 2
    assert "no-log: no prediction log here" in result.output
    assert "Traceback" not in result.output


MONITOR_ON_A_FULL_DISK = """
import resource, signal, sys
from {{ cookiecutter.package_name }}.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail (EFBIG), like ENOSPC
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
sys.argv = ["{{ cookiecutter.package_name }}", "monitor", "--data", sys.argv[1]]
main()
"""


def test_a_full_reports_disk_still_delivers_the_alert_and_leaves_no_half_report(
    monitored: Path, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In a child process: the file-size limit stands in for a full disk (the HTML report is
    # larger than it; the verdict, the alert and the error line are not).
    monkeypatch.setenv(env_var_name(("monitor", "webhook_url")), webhook.url)
    batch = monitored / "drifted.csv"
    assert runner.invoke(app, ["simulate", "drifted", "--output", str(batch)]).exit_code == 0
    result = subprocess.run(
        [sys.executable, "-c", MONITOR_ON_A_FULL_DISK, str(batch)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert "ALERT data drift" in result.stdout, result.stdout + result.stderr
    assert len(webhook.received) == 1  # delivered before the reports were attempted
    assert "monitoring reports not written" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr  # one line, after the alert's own text
    assert result.returncode != 0
    leftovers = [path for path in (monitored / "reports").rglob("*") if path.is_file()]
    assert leftovers == []  # no half-written report folder
