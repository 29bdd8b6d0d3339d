"""The Kubernetes manifests are sized for the service's own limits (params.yaml `serve`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from {{ cookiecutter.package_name }}.settings import (
    Settings,
)

DEPLOYMENT = Path(__file__).resolve().parents[2] / "k8s/base/deployment.yaml"
UNITS = {"": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}


def _bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([A-Za-z]*)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * UNITS[unit]


@pytest.fixture(scope="module")
def pod() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]["spec"]
    return spec


def test_the_log_volume_holds_what_retention_keeps(pod: dict[str, Any], settings: Settings) -> None:
    [volume] = [volume for volume in pod["volumes"] if volume["name"] == "predictions"]
    serve = settings.serve
    # Closed files up to keep_bytes, plus the file being written (up to one file's size); a
    # shadow rollout (serve.rollout, k8s/deploy.sh ROLLOUT) writes a second log as large.
    needed = 2 * (serve.prediction_log_keep_bytes + serve.prediction_log_file_bytes)
    assert needed <= _bytes(volume["emptyDir"]["sizeLimit"]), "raise sizeLimit or lower the limits"


def test_the_memory_limit_holds_every_request_in_flight(
    pod: dict[str, Any], settings: Settings
) -> None:
    [container] = pod["containers"]
    resources = container["resources"]
    serve = settings.serve
    # The request is the idle footprint (the model loaded); each request in flight may buffer
    # a whole body and its headers on top of it.
    per_request = serve.max_body_bytes + serve.max_header_bytes
    needed = _bytes(resources["requests"]["memory"]) + serve.max_requests_in_flight * per_request
    assert needed <= _bytes(resources["limits"]["memory"]), "raise the limit or lower serve.*"


def test_a_stopping_pod_lets_a_slow_request_finish(pod: dict[str, Any], settings: Settings) -> None:
    # uvicorn drains requests in flight on SIGTERM; one still receiving its body may take the
    # body timeout, and the answer a few seconds more.
    assert pod["terminationGracePeriodSeconds"] >= settings.serve.body_timeout_seconds + 5
