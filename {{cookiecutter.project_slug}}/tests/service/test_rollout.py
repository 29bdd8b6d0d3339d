"""Progressive delivery: shadow, canary and A/B serving of a challenger beside the champion,
and `compare` on the shadow's logs."""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.api.main import create_app
from {{ cookiecutter.package_name }}.bundle import model_inputs
from {{ cookiecutter.package_name }}.compare import KEEP, NEED_DATA, PROMOTE, run_compare, write_report
from {{ cookiecutter.package_name }}.comparison import score_rows
from {{ cookiecutter.package_name }}.contract import Contract
from {{ cookiecutter.package_name }}.errors import ProjectError
from {{ cookiecutter.package_name }}.monitoring.window import read_log_window
from {{ cookiecutter.package_name }}.settings import Settings
from {{ cookiecutter.package_name }}.train import build_pipeline, make_estimator

from ..conftest import export_bundle

ServiceSettings = Callable[..., Settings]


@pytest.fixture(scope="module")
def challenger_bundle(
    settings: Settings,
    contract: Contract,
    sample: pd.DataFrame,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """v2: another estimator on the same rows, so some of its answers differ from v1's."""
    estimator = make_estimator(settings.task, "random_forest", {"n_estimators": 10}, seed=1)
    inputs = model_inputs(sample, contract)
    pipeline = build_pipeline(contract, estimator).fit(inputs, sample[contract.target.name])
    directory = tmp_path_factory.mktemp("challenger") / "challenger"
    return export_bundle(
        pipeline, contract, settings.task, directory, version="2", onnx_rows=inputs,
        onnx_tolerance=settings.registry.onnx_tolerance,
    )  # fmt: skip


def with_challenger(service_settings: ServiceSettings, challenger: Path, **serve: Any) -> Settings:
    made = service_settings(**serve)
    registry = made.registry.model_copy(update={"challenger_dir": challenger})
    return made.model_copy(update={"registry": registry})


@pytest.fixture
def records(sample: pd.DataFrame, contract: Contract) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(
        sample[contract.feature_names].head(40).to_json(orient="records")
    )
    return rows


def logged(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(folder.glob("*.jsonl")) for line in path.open()]


def counted(client: TestClient, version: str, role: str) -> float:
    text = client.get("/metrics").text
    labels = f'model_version="{version}",role="{role}"'
    line = "model_predictions_total{" + labels + "} "
    found = [row for row in text.splitlines() if row.startswith(line)]
    return float(found[0].removeprefix(line)) if found else 0.0


def test_shadow_scores_everything_and_answers_with_the_champion_only(
    service_settings: ServiceSettings,
    challenger_bundle: Path,
    records: list[dict[str, Any]],
    contract: Contract,
    tmp_path: Path,
) -> None:
    alone = service_settings(prediction_log_dir=tmp_path / "alone")
    with TestClient(create_app(alone)) as plain:
        expected = [plain.post("/predict", json=record).json() for record in records]
    settings = with_challenger(service_settings, challenger_bundle, rollout="shadow")
    with TestClient(create_app(settings)) as client:
        info = client.get("/model").json()["rollout"]
        assert info == {
            "mode": "shadow", "challenger_version": "2", "challenger_share": 0.0, "problem": None
        }  # fmt: skip
        answers = [client.post("/predict", json=record) for record in records]
        deadline = time.monotonic() + 30
        while counted(client, "2", "shadow") < len(records) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert counted(client, "1", "champion") == len(records)
        assert counted(client, "2", "shadow") == len(records)
    for response, before in zip(answers, expected, strict=True):
        assert response.headers["x-model-version"] == "1"
        body = response.json()
        assert (body["model_version"], body["model_role"]) == ("1", "champion")
        assert body["predictions"] == before["predictions"]
    log_dir = settings.serve.prediction_log_dir
    served, shadowed = logged(log_dir), logged(log_dir / "shadow")
    assert {(r["model_version"], r["role"]) for r in served} == {("1", "champion")}
    assert {(r["model_version"], r["role"]) for r in shadowed} == {("2", "shadow")}
    ids = {body.json()["prediction_id"] for body in answers}
    assert {r["prediction_id"] for r in shadowed} == ids == {r["prediction_id"] for r in served}
    # Monitoring and labels read what clients were answered, never the shadow's records.
    assert len(read_log_window(log_dir, contract, 10**6).frame) == len(records)


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_shadow_share_scores_that_share_of_requests(
    service_settings: ServiceSettings,
    challenger_bundle: Path,
    records: list[dict[str, Any]],
    share: float,
) -> None:
    """serve.shadow_share bounds what the shadow costs a busy service: a share of requests."""
    settings = with_challenger(
        service_settings, challenger_bundle, rollout="shadow", shadow_share=share
    )
    sent = 400
    with TestClient(create_app(settings)) as client:
        for index in range(sent):
            assert client.post("/predict", json=records[index % len(records)]).status_code == 200
    # Stopping the app scored everything still queued; the shadow log holds what was drawn.
    shadowed = logged(settings.serve.prediction_log_dir / "shadow")
    assert share * sent * 0.8 <= len(shadowed) <= share * sent * 1.2 + 1, len(shadowed)
    served = {r["prediction_id"] for r in logged(settings.serve.prediction_log_dir)}
    assert {r["prediction_id"] for r in shadowed} <= served


def test_a_canary_answers_its_share_of_keys_and_each_key_keeps_its_side(
    service_settings: ServiceSettings, challenger_bundle: Path, records: list[dict[str, Any]]
) -> None:
    settings = with_challenger(
        service_settings, challenger_bundle, rollout="canary", challenger_share=0.2
    )
    sides: dict[str, str] = {}
    with TestClient(create_app(settings)) as client:
        for index in range(2000):
            key = f"user-{index}"
            response = client.post(
                "/predict", json=records[index % len(records)], headers={"X-Routing-Key": key}
            )
            body = response.json()
            assert response.headers["x-model-version"] == body["model_version"]
            assert body["model_version"] == {"champion": "1", "challenger": "2"}[body["model_role"]]
            sides[key] = body["model_role"]
        again = {
            key: client.post("/predict", json=records[0], headers={"X-Routing-Key": key}).json()
            for key in list(sides)[:300]
        }
    share = Counter(sides.values())["challenger"] / len(sides)
    assert 0.15 <= share <= 0.25, share
    assert all(body["model_role"] == sides[key] for key, body in again.items())
    roles = Counter(
        (r["model_version"], r["role"]) for r in logged(settings.serve.prediction_log_dir)
    )
    assert set(roles) == {("1", "champion"), ("2", "challenger")}
    assert sum(roles.values()) == 2300


def test_clearing_the_challenger_mid_canary_returns_all_traffic_to_the_champion(
    service_settings: ServiceSettings,
    challenger_bundle: Path,
    records: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    """`challenger --clear` is the canary's rollback: the running service notices, no restart."""
    exported = tmp_path / "challenger"
    shutil.copytree(challenger_bundle, exported)
    settings = with_challenger(
        service_settings, exported, rollout="canary", challenger_share=0.5,
        rollout_check_seconds=0.05,
    )  # fmt: skip
    keys = [f"user-{index}" for index in range(200)]

    def roles(client: TestClient) -> Counter[str]:
        return Counter(
            client.post("/predict", json=records[0], headers={"X-Routing-Key": key}).json()[
                "model_role"
            ]
            for key in keys
        )

    with TestClient(create_app(settings)) as client:
        assert roles(client)["challenger"] > 50
        shutil.rmtree(exported)
        deadline = time.monotonic() + 10
        while client.get("/model").json()["rollout"]["mode"] != "off":
            assert time.monotonic() < deadline, "the rollout never noticed the cleared challenger"
            time.sleep(0.05)
        assert roles(client) == Counter({"champion": len(keys)})
        info = client.get("/model").json()["rollout"]
        assert "no longer exported" in info["problem"]
        assert client.get("/ready").status_code == 200


def test_an_ab_split_logs_each_records_arm(
    service_settings: ServiceSettings, challenger_bundle: Path, records: list[dict[str, Any]]
) -> None:
    settings = with_challenger(
        service_settings, challenger_bundle, rollout="ab", challenger_share=0.5
    )
    with TestClient(create_app(settings)) as client:
        # No routing key: the request id is the key, so each request is drawn anew.
        arms = [client.post("/predict", json=record).json() for record in records * 5]
    by_id = {body["prediction_id"]: body["model_role"] for body in arms}
    for record in logged(settings.serve.prediction_log_dir):
        assert record["role"] == by_id[record["prediction_id"]]
    assert 0.3 <= Counter(by_id.values())["challenger"] / len(by_id) <= 0.7


@pytest.mark.parametrize("problem", ["missing", "same version"])
def test_a_rollout_without_a_servable_challenger_serves_the_champion_and_says_why(
    service_settings: ServiceSettings,
    exported_bundle: Path,
    records: list[dict[str, Any]],
    tmp_path: Path,
    problem: str,
) -> None:
    challenger = tmp_path / "nothing" if problem == "missing" else exported_bundle
    settings = with_challenger(service_settings, challenger, rollout="canary", challenger_share=1)
    with TestClient(create_app(settings)) as client:
        assert client.get("/ready").status_code == 200
        info = client.get("/model").json()["rollout"]
        answers = [client.post("/predict", json=record).json() for record in records[:10]]
    assert info["mode"] == "off"
    expected = "fix: `challenger VERSION`" if problem == "missing" else "the champion itself"
    assert expected in info["problem"]
    assert {(body["model_version"], body["model_role"]) for body in answers} == {("1", "champion")}


def test_compare_pairs_the_logs_and_judges_both_models_on_the_same_labelled_rows(
    service_settings: ServiceSettings,
    challenger_bundle: Path,
    settings: Settings,
    contract: Contract,
    sample: pd.DataFrame,
    fitted_pipeline: Any,
    tmp_path: Path,
) -> None:
    shadowing = with_challenger(service_settings, challenger_bundle, rollout="shadow")
    with pytest.raises(ProjectError, match=r"shadow does not exist; fix: serve with serve.rollout"):
        run_compare(shadowing, contract, None)
    features = json.loads(sample[contract.feature_names].to_json(orient="records"))
    with TestClient(create_app(shadowing)) as client:
        ids = [
            client.post("/predict", json=features[start : start + 50]).json()["prediction_id"]
            for start in range(0, len(features), 50)
        ]
    target = contract.target.name
    truth = sample[target].reset_index(drop=True)
    labels = pd.DataFrame(
        {
            "prediction_id": [ids[i // 50] for i in range(len(truth))],
            "row": [i % 50 for i in range(len(truth))],
            target: truth,
        }
    )
    labels.to_csv(tmp_path / "labels.csv", index=False)
    labels.head(3).to_csv(tmp_path / "few.csv", index=False)

    unlabelled = run_compare(shadowing, contract, None)
    assert (unlabelled.paired_rows, unlabelled.decision) == (len(sample), NEED_DATA)
    assert run_compare(shadowing, contract, tmp_path / "few.csv").decision == NEED_DATA
    result = run_compare(shadowing, contract, tmp_path / "labels.csv")
    assert result.labelled_rows == len(sample)
    # The champion's figure is the champion's own metric on exactly these rows.
    metric, classes = settings.evaluate.primary_metric, list(contract.target.allowed or [])
    scored = score_rows(settings.task, fitted_pipeline, model_inputs(sample, contract), classes)
    expected = settings.task.metrics_of(truth, scored.predicted, scored.scores, classes, metric)
    assert result.quality is not None
    assert result.quality["champion"] == pytest.approx(expected[metric], abs=1e-3)
    assert result.quality["rows"] == len(sample)
    better = result.quality["low"] > settings.evaluate.promotion_margin
    assert result.decision == (PROMOTE if better else KEEP)
    report = write_report(result, tmp_path / "report")
    assert json.loads(report.read_text())["decision"] == result.decision
    assert "<script" not in (tmp_path / "report" / "compare.html").read_text()
