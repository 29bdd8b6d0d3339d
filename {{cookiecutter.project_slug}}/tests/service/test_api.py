"""The prediction service through FastAPI's TestClient: every endpoint and every bad input."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.api.main import (
    create_app,
)
from {{ cookiecutter.package_name }}.api.schemas import (
    example_record,
)
from {{ cookiecutter.package_name }}.bundle import (
    model_inputs,
)
from {{ cookiecutter.package_name }}.contract import (
    Contract,
)
from {{ cookiecutter.package_name }}.settings import (
    Settings,
)

ServiceSettings = Callable[..., Settings]  # the conftest fixture: serve overrides -> Settings


@pytest.fixture(params=["auto", "sklearn"])
def client(
    service_settings: ServiceSettings, request: pytest.FixtureRequest
) -> Iterator[TestClient]:
    """The service on both runtimes: auto serves the bundle's ONNX graph (it passed parity)."""
    app = create_app(service_settings(runtime=request.param))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def records(sample: pd.DataFrame, contract: Contract) -> list[dict[str, Any]]:
    """Real rows of the sample as API records (features only; blanks are null)."""
    features = sample[contract.feature_names].head(5)
    rows: list[dict[str, Any]] = json.loads(features.to_json(orient="records"))
    return rows


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "model_version": "1"}


def test_every_response_carries_the_model_version_and_a_request_id(client: TestClient) -> None:
    for response in (client.get("/health"), client.get("/nowhere"), client.post("/predict")):
        assert response.headers["x-model-version"] == "1"
        assert len(response.headers["x-request-id"]) == 32
    traced = client.get("/health", headers={"X-Request-Id": "trace-42"})
    assert traced.headers["x-request-id"] == "trace-42"


def test_one_record_gives_one_prediction_matching_the_model(
    client: TestClient,
    records: list[dict[str, Any]],
    fitted_pipeline: Any,
    contract: Contract,
    settings: Settings,
) -> None:
    response = client.post("/predict", json=records[0])
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "1"
    assert body["request_id"] == response.headers["x-request-id"]
    assert len(body["prediction_id"]) == 32
    [answer] = body["predictions"]
    expected_frame = model_inputs(pd.DataFrame([records[0]]), contract)
    # ONNX computes in float32: within the tolerance its export was checked against.
    tolerance = settings.registry.onnx_tolerance
    if settings.task.name == "classification":
        assert answer["prediction"] == fitted_pipeline.predict(expected_frame)[0]
        assert set(answer["probabilities"]) == set(contract.target.allowed or [])
        assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
        expected = fitted_pipeline.predict_proba(expected_frame)[0].tolist()
        classes = [str(label) for label in fitted_pipeline.classes_]
        got = [answer["probabilities"][label] for label in classes]
        assert got == pytest.approx(expected, rel=tolerance, abs=tolerance)
    else:
        expected = fitted_pipeline.predict(expected_frame)[0]
        assert answer["prediction"] == pytest.approx(expected, rel=tolerance, abs=tolerance)


def test_a_batch_keeps_the_order_of_its_records(
    client: TestClient, records: list[dict[str, Any]], fitted_pipeline: Any, contract: Contract
) -> None:
    response = client.post("/predict", json=records)
    assert response.status_code == 200
    predicted = [answer["prediction"] for answer in response.json()["predictions"]]
    expected = fitted_pipeline.predict(model_inputs(pd.DataFrame(records), contract)).tolist()
    assert predicted == pytest.approx(expected) if isinstance(expected[0], float) else expected


def test_model_endpoint_describes_the_served_version(
    client: TestClient, contract: Contract
) -> None:
    info = client.get("/model").json()
    assert (info["name"], info["version"], info["alias"]) == ("test-model", "1", "champion")
    assert [column["name"] for column in info["contract"]["features"]] == contract.feature_names
    assert len(info["model_sha256"]) == 64


def test_metrics_count_requests_predictions_and_the_model_version(
    client: TestClient, records: list[dict[str, Any]]
) -> None:
    client.post("/predict", json=records[:3])
    client.post("/predict", json={})
    text = client.get("/metrics").text
    assert 'http_requests_total{method="POST",route="/predict",status="200"} 1.0' in text
    assert 'http_requests_total{method="POST",route="/predict",status="422"} 1.0' in text
    for status in ("200", "422"):
        labels = f'method="POST",route="/predict",status="{status}"'
        assert "http_request_duration_seconds_count{" + labels + "} 1.0" in text
    assert 'model_info{name="test-model",version="1"} 1.0' in text
    assert "model_ready 1.0" in text
    predicted = [
        line
        for line in text.splitlines()
        if line.startswith(("predictions_total", "prediction_value_count"))
    ]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in predicted) == 3


def _bad_inputs(contract: Contract) -> list[tuple[str, Any, list[Any]]]:
    """(case, body, expected error location) for each kind of bad input."""
    good = example_record(contract)
    first = contract.features[0]
    numeric = next(column for column in contract.features if column.is_numeric)
    missing = {key: value for key, value in good.items() if key != first.name}
    cases: list[tuple[str, Any, list[Any]]] = [
        ("missing field", missing, ["body", first.name]),
        ("extra field", {**good, "surprise": 1}, ["body", "surprise"]),
        ("wrong type", {**good, numeric.name: "high"}, ["body", numeric.name]),
        ("bad row in a batch", [good, {**good, numeric.name: "x"}], ["body", 1, numeric.name]),
        ("empty batch", [], ["body"]),
        ("not a record", 42, ["body"]),
    ]
    for column in {
        column.type: column for column in contract.features if column.is_numeric
    }.values():
        # JSON numbers only: a boolean or a quoted number is a client's mistake, not a value.
        cases += [
            (f"boolean for {column.type}", {**good, column.name: True}, ["body", column.name]),
            (f"string for {column.type}", {**good, column.name: " 20 "}, ["body", column.name]),
        ]
    if numeric.max is not None:
        cases.append(
            ("above the range", {**good, numeric.name: numeric.max + 1}, ["body", numeric.name])
        )
    if numeric.min is not None:
        cases.append(
            ("below the range", {**good, numeric.name: numeric.min - 1}, ["body", numeric.name])
        )
    category = next((column for column in contract.features if not column.is_numeric), None)
    if category is not None:
        cases.append(("unknown category", {**good, category.name: "??"}, ["body", category.name]))
    # Your data may have blanks in every column but some: null where the contract forbids it.
    required = next((column for column in contract.features if not column.nullable), None)
    if required is not None:
        cases.append(("null", {**good, required.name: None}, ["body", required.name]))
    return cases


def test_bad_inputs_are_422_naming_the_field(client: TestClient, contract: Contract) -> None:
    for case, body, location in _bad_inputs(contract):
        response = client.post("/predict", json=body)
        assert response.status_code == 422, case
        locations = [problem["loc"] for problem in response.json()["detail"]]
        assert location in locations, (case, locations)


def _nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


@pytest.mark.parametrize("depth", [950, 5000])
def test_deeply_nested_values_are_422_without_echo(
    client: TestClient, contract: Contract, depth: int
) -> None:
    good = json.dumps(example_record(contract))
    name = json.dumps(contract.features[0].name)
    body = good.replace(name + ":", name + ": " + _nested(depth) + ", " + name + "_old:", 1)
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert len(response.content) < 4096


def test_error_replies_are_bounded_whatever_the_body(
    client: TestClient, contract: Contract
) -> None:
    empty_records: list[dict[str, Any]] = [{}] * 1000  # ~3 KB: every field of every record missing
    padded_records = [{"padding": "x" * 880}] * 1000  # ~0.9 MB: and an unknown field each
    for body, per_record in [(empty_records, 0), (padded_records, 1)]:
        response = client.post("/predict", json=body)
        assert response.status_code == 422
        assert len(response.content) < 16384
        reply = response.json()
        total = 1000 * (len(contract.features) + per_record)
        assert reply["error_count"] == total
        assert len(reply["detail"]) == 21
        assert reply["detail"][0]["loc"][:2] == ["body", 0]
        assert reply["detail"][-1]["msg"].startswith(f"and {total - 20} more problems")
        assert "x" * 100 not in response.text  # no input echoed


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({"Content-Type": "text/plain"}, "Content-Type"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "Content-Type"),
        ({}, "Content-Type"),
        ({"Content-Type": "application/json", "Content-Encoding": "gzip"}, "Content-Encoding"),
    ],
)
def test_only_uncompressed_json_bodies_are_predicted(
    client: TestClient, contract: Contract, headers: dict[str, str], named: str
) -> None:
    body = json.dumps(example_record(contract)).encode()
    if "Content-Encoding" in headers:
        body = gzip.compress(body)
    response = client.post("/predict", content=body, headers=headers)
    assert response.status_code == 415
    assert named in response.json()["detail"]
    plain = {"Content-Type": "application/json; charset=utf-8"}
    allowed = client.post("/predict", json=example_record(contract), headers=plain)
    assert allowed.status_code == 200


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_422(client: TestClient, contract: Contract, token: str) -> None:
    good = example_record(contract)
    numeric = next(column for column in contract.features if column.is_numeric)
    body = json.dumps(good).replace(json.dumps(good[numeric.name]), token, 1)
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_invalid_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/predict", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert "not valid JSON" in response.json()["detail"][0]["msg"]


def test_oversized_body_and_batch_are_413(
    service_settings: ServiceSettings, tmp_path: Path, contract: Contract
) -> None:
    app = create_app(service_settings(max_batch_rows=2, max_body_bytes=4096))
    good = example_record(contract)
    with TestClient(app) as client:
        too_many = client.post("/predict", json=[good] * 3)
        assert too_many.status_code == 413
        assert "serve.max_batch_rows" in too_many.json()["detail"]
        too_big = client.post("/predict", content=b"[" + b" " * 5000 + b"]")
        assert too_big.status_code == 413
        assert "serve.max_body_bytes" in too_big.text

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit still holds
            yield b"["
            yield b" " * 5000
            yield b"]"

        streamed = client.post("/predict", content=chunks())
        assert streamed.status_code == 413
        assert client.post("/predict", json=good).status_code == 200  # the worker survived


def _operation(spec: dict[str, Any], path: str) -> dict[str, Any]:
    [operation] = spec["paths"][path].values()
    return dict(operation)


def test_openapi_tells_the_truth_in_both_auth_modes(
    service_settings: ServiceSettings, contract: Contract
) -> None:
    features = [column.name for column in contract.features]
    spec = create_app(service_settings()).openapi()
    predict = _operation(spec, "/predict")
    assert {"422", "413", "415", "503"} <= set(predict["responses"])
    for path in ["/predict", "/model", "/metrics"]:
        assert "security" not in _operation(spec, path), f"{path} needs no key, says the spec"
        assert "401" not in _operation(spec, path)["responses"]
    documented = json.dumps(predict, ensure_ascii=False)  # names as the contract spells them
    assert all(name in documented for name in features)
    keyed = service_settings(require_api_key=True, api_key="k3y")  # pragma: allowlist secret
    spec = create_app(keyed).openapi()
    for path in ["/predict", "/model", "/metrics"]:
        assert "401" in _operation(spec, path)["responses"], path
    for path in ["/predict", "/model"]:
        assert "security" in _operation(spec, path), path
    published = json.dumps(spec)
    assert not [name for name in features if json.dumps(name) in published]
    assert "v1 of" not in published  # no model details either


def test_api_key_guards_predictions_model_and_metrics_but_not_probes(
    service_settings: ServiceSettings, tmp_path: Path, contract: Contract
) -> None:
    secured = service_settings(
        require_api_key=True,
        api_key="s3cret-key",  # pragma: allowlist secret (a test key)
    )
    good = example_record(contract)
    with TestClient(create_app(secured)) as client:
        assert client.post("/predict", json=good).status_code == 401
        wrong, right = {"X-API-Key": "wrong"}, {"X-API-Key": "s3cret-key"}
        assert client.post("/predict", json=good, headers=wrong).status_code == 401
        assert client.get("/model").status_code == 401
        assert client.post("/predict", json=good, headers=right).status_code == 200
        assert client.get("/model", headers=right).status_code == 200
        # /metrics carries class counts and model details: the key, or it as a bearer token.
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=right).status_code == 200
        bearer = {"Authorization": "Bearer s3cret-key"}  # pragma: allowlist secret
        assert client.get("/metrics", headers=bearer).status_code == 200
        assert client.get("/ready").status_code == 200
        assert client.get("/health").status_code == 200


def test_cors_is_off_by_default(client: TestClient) -> None:
    response = client.options(
        "/predict",
        headers={"Origin": "https://example.com", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in response.headers


def test_predictions_are_logged_for_monitoring(
    service_settings: ServiceSettings,
    tmp_path: Path,
    records: list[dict[str, Any]],
) -> None:
    log_dir = tmp_path / "log"  # where service_settings points the log
    with TestClient(create_app(service_settings())) as client:
        batch = client.post("/predict", json=records[:2]).json()
        single = client.post("/predict", json=records[2]).json()
    # Leaving the client shut the app down, which flushes the log.
    [log_file] = log_dir.glob("predictions-*.jsonl")
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [(line["prediction_id"], line["row"]) for line in lines] == [
        (batch["prediction_id"], 0),
        (batch["prediction_id"], 1),
        (single["prediction_id"], 0),
    ]
    assert lines[2]["features"] == pytest.approx(records[2])
    assert lines[2]["prediction"] == single["predictions"][0]["prediction"]
    assert {line["model_version"] for line in lines} == {"1"}
    assert all(line["timestamp"].endswith("+00:00") for line in lines)


def test_a_failing_log_disk_costs_log_lines_not_predictions(
    service_settings: ServiceSettings, tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the log directory should be")
    with TestClient(create_app(service_settings(prediction_log_dir=blocked))) as client:
        for record in records:
            assert client.post("/predict", json=record).status_code == 200
        client.app.state.service.prediction_log.stop()  # type: ignore[attr-defined]
        text = client.get("/metrics").text
    assert 'prediction_log_dropped_records_total{reason="write_error"} 5.0' in text


def test_metrics_append_the_latest_drift_gauges(
    service_settings: ServiceSettings, tmp_path: Path
) -> None:
    settings = service_settings()
    gauges = tmp_path / "drift.prom"
    monitored = settings.model_copy(
        update={"monitor": settings.monitor.model_copy(update={"metrics_file": gauges})}
    )
    with TestClient(create_app(monitored)) as client:
        before = client.get("/metrics").text
        sample = '# TYPE model_drift_share gauge\nmodel_drift_share{model_version="1"} 0.4\n'
        gauges.write_text("# model_version 1\n" + sample)
        after = client.get("/metrics").text
        # A verdict on another model (the champion before a promotion) is not this one's.
        gauges.write_text("# model_version 9\n" + sample.replace('"1"', '"9"'))
        stale = client.get("/metrics").text
    assert "model_drift_share" not in before
    assert after.endswith('model_drift_share{model_version="1"} 0.4\n')
    assert after.startswith(before.split("\n", 1)[0])
    assert "model_drift_share" not in stale
