"""Prometheus rules (prometheus/): promtool's checks and unit tests, then a real Prometheus
scraping the running service and evaluating the rules against what it exposes.

Needs Debian's `prometheus` package (promtool and prometheus); without it these tests are
skipped, unless REQUIRE_PROMETHEUS=1 (the template's CI) makes that a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.contract import (
    Contract,
)

from .conftest import (
    PROJECT_ROOT,
    RunningService,
    free_port,
    serving,
)

RULES = PROJECT_ROOT / "prometheus"
DASHBOARD = PROJECT_ROOT / "grafana" / "dashboards" / "prediction-service.json"
# Panels about series this test's service has no reason to expose yet (no shadow, one gauge).
QUIET_PANELS = ("Shadow", "Drift: share", "monitoring run", "dropped")


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        message = f"{name} not found: install Debian's prometheus package"
        if os.environ.get("REQUIRE_PROMETHEUS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


def test_the_rules_pass_promtool_checks_and_unit_tests() -> None:
    promtool = _tool("promtool")
    for command in (
        ["check", "rules", "rules.yml"],
        ["check", "config", "prometheus.yml"],
        ["check", "config", "compose.yml"],  # the compose stack's (observability profile)
        ["test", "rules", "rules.test.yml"],
    ):
        done = subprocess.run(
            [promtool, *command], cwd=RULES, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def monitored_service(exported_bundle: Path, tmp_path: Path) -> Iterator[RunningService]:
    """The service, with a monitoring verdict on its model that raised an alert."""
    version = json.loads((exported_bundle / "metadata.json").read_text())["version"]
    gauges = tmp_path / "drift.prom"
    # Built without an f-string: the template would read an f-string's doubled braces.
    sample = 'model_drift_alert{model_version="' + version + '"} 1'
    gauges.write_text(f"# model_version {version}\n# TYPE model_drift_alert gauge\n{sample}\n")
    with serving(exported_bundle, tmp_path / "log", MONITOR__METRICS_FILE=str(gauges)) as service:
        yield service


def _api(url: str, path: str, **query: str) -> Any:
    address = f"{url}/api/v1/{path}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(address, timeout=5) as response:  # noqa: S310 - loopback
        return json.load(response)["data"]


def _eventually(check: Callable[[], bool], what: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"Prometheus never showed {what} in {seconds:.0f} s")
        time.sleep(1)


@pytest.mark.slow
def test_a_real_prometheus_scrapes_the_service_and_evaluates_the_rules(
    monitored_service: RunningService, sample: pd.DataFrame, contract: Contract, tmp_path: Path
) -> None:
    prometheus = _tool("prometheus")
    target = urllib.parse.urlparse(monitored_service.url).netloc
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML: the project's rules, this service as the target
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES / "rules.yml")],
                "scrape_configs": [
                    {"job_name": "prediction-service", "static_configs": [{"targets": [target]}]}
                ],
            }
        )
    )
    url = f"http://127.0.0.1:{free_port()}"
    server = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={url.removeprefix('http://')}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        body = sample[contract.feature_names].head(5).to_json(orient="records").encode()
        for _ in range(20):
            request = urllib.request.Request(  # noqa: S310 - loopback
                f"{monitored_service.url}/predict",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback
                pass

        def firing() -> set[str]:
            try:
                alerts = _api(url, "alerts")["alerts"]
            except OSError:
                return set()
            return {alert["labels"]["alertname"] for alert in alerts if alert["state"] == "firing"}

        _eventually(lambda: "ModelDriftAlert" in firing(), "the drift alert firing")
        up = _api(url, "query", query='up{job="prediction-service"}')["result"]
        assert [sample["value"][1] for sample in up] == ["1"]
        recorded = 'service:http_requests:rate5m{route="/predict"}'
        _eventually(
            lambda: bool(_api(url, "query", query=recorded)["result"]),
            "the recorded /predict request rate",
        )
        _eventually(
            lambda: bool(
                _api(url, "query", query="service:predict_latency_seconds:p99_5m")["result"]
            ),
            "the recorded /predict p99 latency",
        )
        # Grafana's dashboard: every panel's query is valid PromQL (a bad one is an HTTP 400
        # here), and the panels about traffic show this service's series.
        panels = json.loads(DASHBOARD.read_text())["panels"]
        for panel in panels:
            results = [_api(url, "query", query=t["expr"])["result"] for t in panel["targets"]]
            if not any(word in panel["title"] for word in QUIET_PANELS):
                assert all(results), (panel["title"], results)
        groups = _api(url, "rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert len(rules) >= 10
        assert all(rule["health"] == "ok" for rule in rules), [
            (rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"
        ]
        # A healthy service raises nothing else.
        assert firing() == {"ModelDriftAlert"}
    finally:
        server.terminate()
        server.wait(timeout=30)
