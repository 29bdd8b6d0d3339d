"""Drift and quality monitoring on real batches: no false alarm, drift named, quality drop seen."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
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
    Champion,
)
from {{ cookiecutter.package_name }}.contract import (
    Column,
    Contract,
)
from {{ cookiecutter.package_name }}.errors import (
    MonitoringInputError,
    MonitoringReportError,
)
from {{ cookiecutter.package_name }}.monitoring.checks import (
    ColumnDrift,
    distinct_rows,
    drift_report,
    is_degraded,
    threshold_factor,
)
from {{ cookiecutter.package_name }}.monitoring.records import (
    PREDICTION,
)
from {{ cookiecutter.package_name }}.monitoring.verdict import (
    Findings,
    MonitorResult,
    alerts_for,
    format_result,
    importance_share,
    run_monitor,
)
from {{ cookiecutter.package_name }}.monitoring.window import (
    Window,
    attach_labels,
    read_batch_window,
    read_log_window,
)
from {{ cookiecutter.package_name }}.settings import (
    Settings,
)
from {{ cookiecutter.package_name }}.simulate import (
    make_batch,
)

from .conftest import MonitorSettings

ROWS = 300
SEED = 7
MAX_ROWS = 100_000


def serve(settings: Settings, batch: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Send the batch through the real service (which writes the log); return its labels."""
    features = batch[contract.feature_names]
    labels: list[dict[str, Any]] = []
    with TestClient(create_app(settings)) as client:
        for start in range(0, len(batch), 50):
            chunk = features.iloc[start : start + 50]
            response = client.post(
                "/predict",
                content=chunk.to_json(orient="records"),
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 200, response.text
            prediction_id = response.json()["prediction_id"]
            labels += [
                {"prediction_id": prediction_id, "row": row, contract.target.name: value}
                for row, value in enumerate(batch[contract.target.name].iloc[start : start + 50])
            ]
    return pd.DataFrame(labels)


def sample(name: str, labels: str, value: int) -> str:
    """One line of Prometheus' text format (built without braces in the source: Jinja renders
    this file)."""
    return name + "{" + labels + "} " + f"{value}\n"


def csv_window(batch: pd.DataFrame, path: Path, contract: Contract, champion: Champion) -> Window:
    batch.to_csv(path, index=False)
    return read_batch_window(path, contract, champion, MAX_ROWS, SEED)


def test_a_clean_batch_raises_no_alert(
    monitor_settings: MonitorSettings,
    contract: Contract,
    champion: Champion,
    production: pd.DataFrame,
    tmp_path: Path,
) -> None:
    settings = monitor_settings()
    batch = make_batch(production, contract, ROWS, SEED, drifted=False, replace=True).frame
    result = run_monitor(
        settings, contract, champion, csv_window(batch, tmp_path / "clean.csv", contract, champion)
    )
    assert not result.alert, format_result(result)
    assert result.drifted_share <= settings.monitor.max_drifted_share
    assert result.performance is not None
    assert not result.performance.degraded
    assert len(result.features) == len(contract.features)
    assert result.prediction is not None
    for artifact in ("report.html", "evidently.json", "summary.json", "quality.html"):
        assert (result.report_dir / artifact).stat().st_size > 0
    summary = json.loads((result.report_dir / "summary.json").read_text())
    assert summary["alert"] is False
    assert summary["rows"] == ROWS
    gauges = settings.monitor.metrics_file.read_text()
    assert sample("model_drift_alert", f'model_version="{champion.version}"', 0) in gauges
    assert gauges.startswith(f"# model_version {champion.version}\n")
    # The prediction is reported on its own, never counted among the features.
    assert PREDICTION not in {check.column for check in result.features}
    assert "model_prediction_drifted{" in gauges
    table = format_result(result)
    assert f"of {len(contract.features)} features drifted" in table
    assert "\nprediction: " in table


def test_an_unwritable_report_folder_still_announces_the_verdict_first(
    monitor_settings: MonitorSettings,
    contract: Contract,
    champion: Champion,
    production: pd.DataFrame,
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the reports folder should be")
    settings = monitor_settings(report_dir=blocker / "reports")
    batch = make_batch(production, contract, ROWS, SEED, drifted=True, replace=True).frame
    window = csv_window(batch, tmp_path / "drifted.csv", contract, champion)
    announced: list[MonitorResult] = []
    with pytest.raises(MonitoringReportError, match="the verdict above stands") as raised:
        run_monitor(settings, contract, champion, window, on_verdict=announced.append)
    [result] = announced
    assert result.alert  # decided and announced (the CLI prints and alerts here) before writing
    assert str(blocker / "reports") in str(raised.value)


def test_a_drifted_batch_alerts_and_names_the_drifted_columns(
    monitor_settings: MonitorSettings,
    contract: Contract,
    champion: Champion,
    production: pd.DataFrame,
    tmp_path: Path,
) -> None:
    settings = monitor_settings()
    batch = make_batch(production, contract, ROWS, SEED, drifted=True, replace=True)
    result = run_monitor(
        settings,
        contract,
        champion,
        csv_window(batch.frame, tmp_path / "drifted.csv", contract, champion),
    )
    assert result.alert
    assert set(batch.drifted_columns) <= set(result.drifted_columns), format_result(result)
    [drift_alert] = [alert for alert in result.alerts if alert.startswith("data drift")]
    assert all(column in drift_alert for column in batch.drifted_columns)
    table = format_result(result)
    assert "ALERT data drift" in table
    gauges = settings.monitor.metrics_file.read_text()
    version = f'model_version="{champion.version}"'
    assert sample("model_drift_alert", version, 1) in gauges
    column = batch.drifted_columns[0]
    assert sample("model_drift_column_drifted", f'column="{column}",{version}', 1) in gauges


def test_the_prediction_log_and_labels_reveal_a_quality_drop(
    monitor_settings: MonitorSettings,
    contract: Contract,
    champion: Champion,
    production: pd.DataFrame,
    tmp_path: Path,
) -> None:
    settings = monitor_settings()
    batch = make_batch(production, contract, ROWS, SEED, drifted=False, replace=True).frame
    labels = serve(settings, batch, contract)
    log = settings.serve.prediction_log_dir

    truth = tmp_path / "truth.csv"
    labels.to_csv(truth, index=False)
    window = attach_labels(read_log_window(log, contract, ROWS), truth, contract)
    honest = run_monitor(settings, contract, champion, window)
    assert honest.performance is not None
    assert honest.performance.labelled_rows == ROWS
    assert not honest.performance.degraded, format_result(honest)

    # The world changed: the same inputs now mean something else.
    target = contract.target.name
    changed = labels.copy()
    if settings.task.name == "classification":
        classes = list(contract.target.allowed or [])
        flip = changed.index % 3 == 0
        changed.loc[flip, target] = changed.loc[flip, target].map(
            lambda label: classes[(classes.index(str(label)) + 1) % len(classes)]
        )
    else:
        changed[target] = changed[target] * 1.5
    wrong = tmp_path / "changed.csv"
    changed.to_csv(wrong, index=False)
    window = attach_labels(read_log_window(log, contract, ROWS), wrong, contract)
    result = run_monitor(settings, contract, champion, window)
    assert result.performance is not None
    assert result.performance.degraded
    assert any(alert.startswith("performance") for alert in result.alerts)
    assert "model_performance_relative_drop" in settings.monitor.metrics_file.read_text()


def test_two_clients_repeating_a_request_id_each_get_their_own_labels(
    monitor_settings: MonitorSettings, contract: Contract, production: pd.DataFrame, tmp_path: Path
) -> None:
    """Labels join on the service's prediction id: a client's X-Request-Id cannot misroute them."""
    settings = monitor_settings()
    target = contract.target.name
    rows = production.head(4)
    answers = []
    with TestClient(create_app(settings)) as client:
        for start in (0, 2):  # two clients, one X-Request-Id, two rows each
            chunk = rows.iloc[start : start + 2][contract.feature_names]
            response = client.post(
                "/predict",
                content=chunk.to_json(orient="records"),
                headers={"X-Request-Id": "same-id", "Content-Type": "application/json"},
            )
            answers.append(response.json())
    assert answers[0]["request_id"] == answers[1]["request_id"] == "same-id"
    assert answers[0]["prediction_id"] != answers[1]["prediction_id"]
    labels = pd.DataFrame(
        [
            {"prediction_id": answer["prediction_id"], "row": row, target: value}
            for answer, part in zip(answers, (rows.iloc[:2], rows.iloc[2:]), strict=True)
            for row, value in enumerate(part[target])
        ]
    )
    repeated = labels.iloc[[0]].assign(**{target: labels[target].iloc[1]})  # a second label
    unknown = pd.DataFrame([{"prediction_id": "not-ours", "row": 0, target: labels[target][0]}])
    path = tmp_path / "labels.csv"
    pd.concat([labels, repeated, unknown]).to_csv(path, index=False)
    window = attach_labels(
        read_log_window(settings.serve.prediction_log_dir, contract, 10), path, contract
    )
    assert window.labels is not None
    assert window.labels.notna().sum() == 4  # each prediction exactly one label: its own
    expected = settings.task.labels(rows[target]).tolist()
    assert settings.task.labels(window.labels).tolist() == expected
    assert "refused 1 for predictions not in the window, 1 repeating" in window.notes[-1]


def test_the_window_is_the_latest_rows_and_large_windows_are_sampled(
    monitor_settings: MonitorSettings,
    contract: Contract,
    champion: Champion,
    production: pd.DataFrame,
) -> None:
    settings = monitor_settings(max_rows=100)
    batch = make_batch(production, contract, 150, SEED, drifted=False, replace=True).frame
    serve(settings, batch, contract)
    window = read_log_window(settings.serve.prediction_log_dir, contract, 120)
    assert len(window.frame) == 120
    result = run_monitor(settings, contract, champion, window)
    assert result.rows == 100
    assert any("sampled to 100" in note for note in result.notes)


def test_a_large_batch_is_sampled_while_reading(
    monitor_settings: MonitorSettings,
    contract: Contract,
    champion: Champion,
    production: pd.DataFrame,
    tmp_path: Path,
) -> None:
    settings = monitor_settings(max_rows=100)
    path = tmp_path / "large.csv"
    make_batch(production, contract, 150, SEED, drifted=False, replace=True).frame.to_csv(
        path, index=False
    )
    window = read_batch_window(path, contract, champion, 100, SEED)
    assert (len(window.frame), window.rows_available) == (100, 150)
    again = read_batch_window(path, contract, champion, 100, SEED)
    pd.testing.assert_frame_equal(window.frame, again.frame)
    result = run_monitor(settings, contract, champion, window)
    assert (result.rows, result.rows_available) == (100, 150)
    assert any("150 rows were sampled to 100 while reading" in note for note in result.notes)


def test_reports_never_overwrite_each_other(
    monitor_settings: MonitorSettings,
    contract: Contract,
    champion: Champion,
    production: pd.DataFrame,
    tmp_path: Path,
) -> None:
    settings = monitor_settings()
    batch = make_batch(production, contract, 100, SEED, drifted=False, replace=True).frame
    window = csv_window(batch, tmp_path / "batch.csv", contract, champion)
    first = run_monitor(settings, contract, champion, window)
    first_summary = (first.report_dir / "summary.json").read_bytes()
    second = run_monitor(settings, contract, champion, window, now=pd.Timestamp(first.created_at))
    assert second.report_dir != first.report_dir
    assert (first.report_dir / "summary.json").read_bytes() == first_summary


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "the prediction log is empty"),
        ("not json\n", r":1: not a prediction log line \(not a JSON object\)"),
        ('{"features": {}}\n', r":1: not a prediction log line \(missing key 'prediction'\)"),
        ('{"features": {"x": 1}, "prediction": 1}\n', r":1: logged features lack"),
    ],
)
def test_an_unusable_log_is_named_with_the_problem(
    content: str, expected: str, contract: Contract, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    log.mkdir()
    (log / "predictions-2026-01-01.jsonl").write_text(content)
    with pytest.raises(MonitoringInputError, match=expected) as raised:
        read_log_window(log, contract, 100)
    assert str(log) in str(raised.value)
    assert (log / "predictions-2026-01-01.jsonl").read_text() == content  # left as it was


def test_a_torn_last_line_is_skipped_with_a_note(contract: Contract, tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.mkdir()
    line = json.dumps({"features": example_record(contract), "prediction": 1})
    whole = f"{line}\n" * 3
    (log / "predictions-2026-01-01T000000.jsonl").write_text(whole + line[: len(line) // 2])
    window = read_log_window(log, contract, 100)
    assert len(window.frame) == 3
    [note] = window.notes
    assert "torn last line" in note


def test_a_missing_log_folder_says_how_to_get_one(contract: Contract, tmp_path: Path) -> None:
    with pytest.raises(MonitoringInputError, match=r"no prediction log here; fix: serve"):
        read_log_window(tmp_path / "nowhere", contract, 100)


def test_a_small_window_a_missing_reference_and_foreign_labels_are_refused(
    monitor_settings: MonitorSettings,
    contract: Contract,
    champion: Champion,
    production: pd.DataFrame,
    tmp_path: Path,
) -> None:
    settings = monitor_settings()
    tiny = make_batch(production, contract, 5, SEED, drifted=False).frame
    with pytest.raises(MonitoringInputError, match=r"the window has 5 rows, fewer than"):
        run_monitor(
            settings, contract, champion, csv_window(tiny, tmp_path / "t.csv", contract, champion)
        )

    batch = make_batch(production, contract, 50, SEED, drifted=False, replace=True).frame
    window = csv_window(batch, tmp_path / "b.csv", contract, champion)
    missing = settings.model_copy(
        update={"data": settings.data.model_copy(update={"train_path": tmp_path / "gone.csv"})}
    )
    with pytest.raises(MonitoringInputError, match=r"gone\.csv: reference \(training\) data"):
        run_monitor(missing, contract, champion, window)

    serve(settings, batch, contract)
    foreign = tmp_path / "foreign.csv"
    pd.DataFrame(
        {
            "prediction_id": ["nobody"],
            "row": [0],
            contract.target.name: [batch[contract.target.name].iloc[0]],
        }
    ).to_csv(foreign, index=False)
    logged = read_log_window(settings.serve.prediction_log_dir, contract, 100)
    with pytest.raises(MonitoringInputError, match=r"foreign\.csv: none of its 1 labels"):
        attach_labels(logged, foreign, contract)
    no_target = tmp_path / "no_target.csv"
    pd.DataFrame({"prediction_id": ["x"]}).to_csv(no_target, index=False)
    with pytest.raises(MonitoringInputError, match=r"no_target\.csv: missing columns "):
        attach_labels(logged, no_target, contract)


def test_labels_that_are_all_one_value_are_a_note_not_a_crash(
    monitor_settings: MonitorSettings,
    contract: Contract,
    champion: Champion,
    production: pd.DataFrame,
    tmp_path: Path,
) -> None:
    settings = monitor_settings()
    batch = make_batch(production, contract, ROWS, SEED, drifted=False, replace=True).frame
    batch[contract.target.name] = batch[contract.target.name].iloc[0]
    window = csv_window(batch, tmp_path / "one-value.csv", contract, champion)
    result = run_monitor(settings, contract, champion, window)
    assert (result.report_dir / "summary.json").is_file()
    if settings.task.name == "classification":
        assert result.performance is None
        assert any("labels are one class" in note for note in result.notes)


def test_a_batch_missing_contract_columns_is_named(
    contract: Contract, champion: Champion, production: pd.DataFrame, tmp_path: Path
) -> None:
    dropped = contract.feature_names[0]
    path = tmp_path / "partial.csv"
    production.drop(columns=[dropped]).to_csv(path, index=False)
    with pytest.raises(
        MonitoringInputError, match=rf"partial\.csv: missing contract columns {re.escape(dropped)}"
    ):
        read_batch_window(path, contract, champion, MAX_ROWS, SEED)


def test_rows_that_break_the_contract_are_counted_and_kept_for_the_checks(
    contract: Contract, champion: Champion, production: pd.DataFrame, tmp_path: Path
) -> None:
    """The note says how many the service would refuse; the drift and data checks still see
    them (a broken feed is what they exist to catch)."""
    name = contract.features[0].name
    broken = production.astype({name: object})
    broken.loc[broken.index[:2], name] = "not a value"  # no number, no code of the contract
    path = tmp_path / "broken.csv"
    broken.to_csv(path, index=False)
    window = read_batch_window(path, contract, champion, MAX_ROWS, SEED)
    assert len(window.frame) == len(production)
    (note,) = window.notes
    assert f"2 of {len(production)} rows break the contract" in note
    assert f"(row 0: {name}: 'not a value' is not " in note


def test_rows_the_model_cannot_take_get_no_prediction_and_an_empty_column_is_drift(
    monitor_settings: MonitorSettings,
    contract: Contract,
    champion: Champion,
    production: pd.DataFrame,
    tmp_path: Path,
) -> None:
    """An infinite value (scikit-learn refuses it) and a column left blank by a broken feed
    (Evidently cannot test it) are findings, not crashes."""
    numeric = next(column.name for column in contract.features if column.is_numeric)
    batch = production.astype({numeric: object})
    batch.loc[batch.index[3], numeric] = float("inf")
    window = csv_window(batch, tmp_path / "inf.csv", contract, champion)
    assert window.frame[PREDICTION].isna().tolist() == [row == 3 for row in range(len(batch))]
    assert window.labels is not None
    assert window.labels.isna().iloc[3]  # no prediction: no label judges it
    assert (
        f"(row 3: {numeric}: inf is not a finite number); they get no prediction"
        in (window.notes[0])
    )
    run_monitor(monitor_settings(), contract, champion, window)
    blank = production.assign(**{numeric: None})
    result = run_monitor(
        monitor_settings(),
        contract,
        champion,
        csv_window(blank, tmp_path / "blank.csv", contract, champion),
    )
    assert numeric in result.drifted_columns
    assert result.alert
    assert "no values in the window" in format_result(result)
    summary = (result.report_dir / "summary.json").read_text()
    json.loads(summary, parse_constant=lambda name: pytest.fail(f"{name} in summary.json"))


def test_labels_that_are_no_class_or_number_are_refused(
    contract: Contract, champion: Champion, production: pd.DataFrame, tmp_path: Path
) -> None:
    target = contract.target.name
    batch = production.astype({target: object})
    batch.loc[batch.index[2], target] = "maybe"
    path = tmp_path / "labelled.csv"
    batch.to_csv(path, index=False)
    with pytest.raises(
        MonitoringInputError, match=r"labelled\.csv: 1 label\(s\) break the contract \(row 2: "
    ):
        read_batch_window(path, contract, champion, MAX_ROWS, SEED)


def test_missing_categories_do_not_break_the_drift_report(settings: Settings) -> None:
    """Blank categories in the window and the reference: Evidently counts them, no crash."""
    contract = Contract(
        name="toy",
        target=Column(name="label", type="category", allowed=["no", "yes"]),
        features=[
            Column(name="size", type="float", nullable=True),
            Column(name="colour", type="category", allowed=["red", "blue"], nullable=True),
        ],
    )
    rng = np.random.default_rng(0)

    def window(rows: int, blanks: int) -> Window:
        colour = pd.Series(rng.choice(["red", "blue"], rows), dtype="string")
        colour[:blanks] = pd.NA  # as read_table types a blank category
        frame = pd.DataFrame({"size": rng.normal(size=rows), "colour": colour})
        categorical = settings.task.prediction_is_categorical
        frame[PREDICTION] = (
            rng.choice(["no", "yes"], rows) if categorical else rng.normal(size=rows)
        )
        return Window(frame, "test", rows)

    report = drift_report(window(200, 9), window(300, 4), contract, settings)
    assert set(report.columns) == {"size", "colour", PREDICTION}
    assert report.missing_share["colour"] == pytest.approx(9 / 200)


def test_a_drifted_batch_keeps_blank_categories_blank() -> None:
    contract = Contract(
        name="toy",
        target=Column(name="label", type="category", allowed=["no", "yes"]),
        features=[
            Column(name="size", type="float"),
            Column(name="colour", type="category", allowed=["red", "blue"], nullable=True),
        ],
    )
    colour = pd.Series(["red", "blue", None, "red"] * 25, dtype="string")  # as read_table types it
    production = pd.DataFrame({"size": np.arange(100.0), "colour": colour, "label": "no"})
    batch = make_batch(production, contract, 200, seed=1, drifted=True, replace=True).frame
    values = set(batch["colour"].dropna())
    assert values <= {"red", "blue"}, values  # never the text "<NA>"
    assert batch["colour"].isna().any()  # some blanks were not re-mixed


def test_labels_coded_as_numbers_match_the_predicted_codes(tmp_path: Path) -> None:
    contract = Contract(
        name="coded",
        target=Column(name="grade", type="category", allowed=["1", "3"]),
        features=[Column(name="size", type="float")],
    )
    logged = pd.DataFrame(
        {
            "size": [1.0, 2.0, 3.0],
            PREDICTION: ["3", "1", "3"],
            "prediction_id": "r",
            "row": [0, 1, 2],
        }
    )
    labels = tmp_path / "labels.csv"
    # Read as 3.0, NaN, 1.0; the blank is no label, and a later label of row 1 still counts.
    labels.write_text("prediction_id,row,grade\nr,0,3\nr,1,\nr,2,1\n")
    window = attach_labels(Window(logged, "log", 3), labels, contract)
    assert window.labels is not None
    assert window.labels.tolist()[::2] == ["3", "1"]
    assert window.labels.isna().tolist() == [False, True, False]
    assert window.notes[-1].endswith("and 1 with a blank grade"), window.notes
    labels.write_text("prediction_id,row,grade\nr,1,\nr,1,1\n")
    window = attach_labels(Window(logged, "log", 3), labels, contract)
    assert window.labels is not None
    assert window.labels.tolist()[1] == "1"
    labels.write_text("prediction_id,row,grade\nr,0,\nr,1,\n")
    blank = "all 2 labels are blank; fix: fill in the grade"
    with pytest.raises(MonitoringInputError, match=blank):
        attach_labels(Window(logged, "log", 3), labels, contract)


def test_a_quality_change_is_worded_by_its_direction() -> None:
    from {{ cookiecutter.package_name }}.monitoring.verdict import (
        _change,
    )

    assert _change(0.043) == "4.3% worse"
    assert _change(-0.043) == "4.3% better"  # was printed as "-4.3% worse"


def drift(column: str, drifted: bool) -> ColumnDrift:
    return ColumnDrift(column, "wasserstein", 0.5 if drifted else 0.1, 0.3, drifted)


def test_drift_in_the_features_the_model_relies_on_alerts_on_its_own(settings: Settings) -> None:
    """Three of thirty features is under the share bar, but not when they are what it uses."""
    features = [drift(f"f{index}", drifted=index < 3) for index in range(30)]
    importance = {f"f{index}": (10.0 if index < 3 else 0.1) for index in range(30)}
    importance["f29"] = -0.5  # permutation importance can be negative: it counts as none
    share = importance_share(features, importance)
    assert share == pytest.approx(30 / (30 + 26 * 0.1))
    quiet = {f"f{index}": 1.0 for index in range(30)}
    assert importance_share(features, quiet) == pytest.approx(0.1)
    assert importance_share(features, {}) is None  # not on record: the rule does not apply

    def alerts(share_of_importance: float | None, prediction: ColumnDrift | None) -> list[str]:
        findings = Findings(
            drift=None,  # type: ignore[arg-type]
            features=features,
            prediction=prediction,
            share=0.1,
            importance=share_of_importance,
            performance=None,
            alerts=[],
        )
        return alerts_for(findings, settings.monitor)

    [alert] = alerts(share, None)
    assert alert.startswith("data drift: the drifted features carry 92% of the model's")
    assert alerts(0.1, None) == []
    assert alerts(None, drift(PREDICTION, drifted=False)) == []
    [moved] = alerts(None, drift(PREDICTION, drifted=True))
    assert moved.startswith("prediction drift: wasserstein 0.5")
    quiet_settings = settings.monitor.model_copy(update={"alert_on_prediction_drift": False})
    findings = Findings(None, features, drift(PREDICTION, True), 0.1, None, None, [])  # type: ignore[arg-type]
    assert alerts_for(findings, quiet_settings) == []


def test_one_feature_moved_far_alerts_whatever_its_importance(settings: Settings) -> None:
    """A single input moved by twice its threshold is a broken feed, not noise."""

    def alerts(score: float, threshold: float = 0.3) -> list[str]:
        features = [drift(f"f{index}", drifted=False) for index in range(29)]
        features.append(ColumnDrift("f29", "wasserstein", score, threshold, score > threshold))
        findings = Findings(None, features, None, 1 / 30, 0.01, None, [])  # type: ignore[arg-type]
        return alerts_for(findings, settings.monitor)

    assert alerts(0.5) == []  # drifted, but one unimportant feature of thirty: no alert
    [alert] = alerts(0.61)
    assert alert.startswith("data drift: 1 feature(s) moved more than 2x the drift threshold")
    assert "f29 (wasserstein 0.61)" in alert
    assert alerts(0.9, threshold=0.49) == []  # a small window's raised threshold raises it too
    assert alerts(float("nan")) == []
    # A feature left without any value (a broken feed) is the farthest move of all.
    features = [drift(f"f{index}", drifted=False) for index in range(29)]
    features.append(ColumnDrift("f29", "no values in the window", math.nan, math.nan, True))
    findings = Findings(None, features, None, 1 / 30, 0.01, None, [])  # type: ignore[arg-type]
    [vanished] = alerts_for(findings, settings.monitor)
    assert "f29 (no values in the window)" in vanished
    lenient = settings.monitor.model_copy(update={"severe_drift_factor": 4.0})
    findings = Findings(None, [drift("f0", True)], None, 1 / 30, 0.01, None, [])  # type: ignore[arg-type]
    assert alerts_for(findings, lenient) == []


@pytest.mark.parametrize(
    ("low", "alert"),
    [
        (0.06, True),  # the whole interval above the bar
        (0.03, False),  # real, but chance could explain the part above the bar
        (-0.02, False),  # chance could explain all of it
        (0.01, False),  # real, but well under the bar
        (math.nan, False),  # no interval: not judged
    ],
)
def test_a_quality_drop_alerts_when_its_whole_interval_clears_the_bar(
    low: float, alert: bool
) -> None:
    assert is_degraded(low, bar=0.05) is alert


def test_a_small_window_has_its_drift_thresholds_raised(
    monitor_settings: MonitorSettings,
    contract: Contract,
    champion: Champion,
    production: pd.DataFrame,
    tmp_path: Path,
) -> None:
    """A distance on few rows is noisier: below threshold_rows the thresholds grow with it."""
    assert threshold_factor(80, 80) == 1.0
    assert threshold_factor(5000, 80) == 1.0
    assert threshold_factor(20, 80) == 2.0
    settings = monitor_settings()
    rows = settings.monitor.min_rows
    batch = make_batch(production, contract, rows, SEED, drifted=False, replace=True)
    window = csv_window(batch.frame, tmp_path / "small.csv", contract, champion)
    result = run_monitor(settings, contract, champion, window)
    # Drawn with replacement: a repeated row is no new evidence, so distinct rows count.
    factor = math.sqrt(settings.monitor.threshold_rows / distinct_rows(batch.frame, contract))
    base = {
        settings.monitor.numerical_test: settings.monitor.numerical_threshold,
        settings.monitor.categorical_test: settings.monitor.categorical_threshold,
    }
    assert result.features
    for check in result.features:
        assert check.threshold == pytest.approx(base[check.method] * factor), check
    assert any("drift thresholds raised" in note for note in result.notes), result.notes

    # 300 rows resampled from 36 are judged as 36 rows (a clean wine batch made this way once
    # had a feature 0.6 standard deviations off, with the thresholds of 300 rows).
    few = production.drop_duplicates(subset=contract.feature_names).head(36)
    repeated = few.sample(n=300, replace=True, random_state=SEED)
    assert distinct_rows(repeated, contract) <= 36
    window = csv_window(repeated, tmp_path / "repeated.csv", contract, champion)
    result = run_monitor(settings, contract, champion, window)
    factor = math.sqrt(settings.monitor.threshold_rows / distinct_rows(repeated, contract))
    assert factor > 1.4
    for check in result.features:
        assert check.threshold == pytest.approx(base[check.method] * factor), check
    assert any(
        note.startswith(f"300 rows but {distinct_rows(repeated, contract)} distinct")
        for note in result.notes
    ), result.notes
