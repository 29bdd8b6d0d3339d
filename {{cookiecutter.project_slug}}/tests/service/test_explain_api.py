"""/explain: off unless serve.explain; on, each record's attributions add up to the model's
output and match the `explain` code's; bad records are 422 before any SHAP work; without shap
it answers 503 naming the fix, and /predict is unaffected."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.api.main import create_app
from {{ cookiecutter.package_name }}.api.schemas import example_record
from {{ cookiecutter.package_name }}.bundle import model_inputs
from {{ cookiecutter.package_name }}.contract import Contract
from {{ cookiecutter.package_name }}.explain import Explainer, background
from {{ cookiecutter.package_name }}.settings import Settings

ServiceSettings = Callable[..., Settings]


def records_of(sample: pd.DataFrame, contract: Contract, rows: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(
        sample[contract.feature_names].head(rows).to_json(orient="records")
    )
    return found


def test_explain_is_off_by_default(service_settings: ServiceSettings, contract: Contract) -> None:
    with TestClient(create_app(service_settings())) as client:
        assert client.post("/explain", json=example_record(contract)).status_code == 404
        assert "/explain" not in client.get("/openapi.json").json()["paths"]
        assert client.app.state.service.explainer is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("runtime", ["auto", "sklearn"])
def test_explanations_add_up_and_match_the_explain_code(
    service_settings: ServiceSettings,
    contract: Contract,
    sample: pd.DataFrame,
    fitted_pipeline: Any,
    runtime: str,
) -> None:
    sent = records_of(sample, contract, 4)
    with TestClient(create_app(service_settings(explain=True, runtime=runtime))) as client:
        assert "/explain" in client.get("/openapi.json").json()["paths"]
        response = client.post("/explain", json=sent)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "1"
    inputs = model_inputs(sample, contract)
    classes = list(contract.target.allowed or [])
    local = Explainer(fitted_pipeline, classes, background(fitted_pipeline, inputs, seed=0))
    expected = local.explain(inputs.head(4))
    model_value = local.model_output(inputs.head(4), expected)
    assert len(body["explanations"]) == 4
    for index, item in enumerate(body["explanations"]):
        assert list(item["attributions"]) == contract.feature_names
        total = item["base_value"] + sum(item["attributions"].values())
        assert total == pytest.approx(item["value"], abs=1e-9)
        assert item["value"] == pytest.approx(model_value[index], abs=1e-6)
        assert item["output"] == expected.output
        assert list(item["attributions"].values()) == pytest.approx(
            list(expected.values[index]), abs=1e-9
        )


def test_bad_records_are_422_naming_the_field(
    service_settings: ServiceSettings, contract: Contract
) -> None:
    first = contract.features[0]
    bad = {**example_record(contract), first.name: "not-a-value"}
    with TestClient(create_app(service_settings(explain=True))) as client:
        response = client.post("/explain", json=[example_record(contract), bad])
        assert response.status_code == 422
        assert ["body", 1, first.name] in [problem["loc"] for problem in response.json()["detail"]]
        form = client.post("/explain", content=b"a=1", headers={"Content-Type": "text/plain"})
        assert form.status_code == 415


def test_without_shap_explain_is_503_naming_the_fix_and_predict_still_answers(
    service_settings: ServiceSettings, contract: Contract, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "shap", None)  # what `import shap` meets without the group
    with TestClient(create_app(service_settings(explain=True))) as client:
        response = client.post("/explain", json=example_record(contract))
        assert response.status_code == 503
        assert "uv sync --group explain" in response.json()["detail"]
        assert client.post("/predict", json=example_record(contract)).status_code == 200
        assert client.get("/ready").status_code == 200


def test_the_api_key_guards_explain(service_settings: ServiceSettings, contract: Contract) -> None:
    secured = service_settings(
        explain=True,
        require_api_key=True,
        api_key="s3cret-key",  # pragma: allowlist secret (a test key)
    )
    with TestClient(create_app(secured)) as client:
        record = example_record(contract)
        assert client.post("/explain", json=record).status_code == 401
        right = {"X-API-Key": "s3cret-key"}  # pragma: allowlist secret
        assert client.post("/explain", json=record, headers=right).status_code == 200
