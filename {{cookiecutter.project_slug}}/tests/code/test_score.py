"""Batch scoring: the service's answers for each conforming row; the others rejected, with why."""

from __future__ import annotations

import math
import random
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from {{ cookiecutter.package_name }} import (
    row_checks,
)
from {{ cookiecutter.package_name }}.api.schemas import (
    RequestSchemas,
)
from {{ cookiecutter.package_name }}.bundle import (
    Champion,
    load_champion,
)
from {{ cookiecutter.package_name }}.cli import (
    app,
)
from {{ cookiecutter.package_name }}.contract import (
    Column,
    Contract,
)
from {{ cookiecutter.package_name }}.errors import (
    ProjectError,
)
from {{ cookiecutter.package_name }}.monitoring.window import (
    read_log_window,
)
from {{ cookiecutter.package_name }}.row_checks import (
    checked_rows,
)
from {{ cookiecutter.package_name }}.rows import (
    row_keys,
)
from {{ cookiecutter.package_name }}.score import (
    PROBABILITY_PREFIX,
    REASON,
    ScoreJob,
    ScoreResult,
    Shard,
    rejected_rows,
    run_score,
)
from {{ cookiecutter.package_name }}.settings import (
    Settings,
    env_var_name,
)
from {{ cookiecutter.package_name }}.tabular import (
    read_table_chunks,
)


@pytest.fixture(scope="module")
def champion(exported_bundle: Path, settings: Settings) -> Champion:
    return load_champion(exported_bundle, settings.task)


def _job(tmp_path: Path, source: Path, **changes: Any) -> ScoreJob:
    options: dict[str, Any] = {
        "source": source,
        "output": tmp_path / "out" / "predictions.csv",
        "rejects": tmp_path / "out" / "rejects.csv",
        "log_dir": tmp_path / "log",
        "log_rows": 50,
        "chunk_rows": 1000,
        **changes,
    }
    return ScoreJob(**options)


def _score(job: ScoreJob, champion: Champion) -> ScoreResult:
    return run_score(job, champion, lambda rows, scored, rejected: None)


def _broken(sample: pd.DataFrame, champion: Champion) -> tuple[pd.DataFrame, dict[int, str]]:
    """The sample with one problem planted in some rows, and the field each names."""
    frame = sample[champion.contract.feature_names].astype(object).copy()
    features = champion.contract.features
    numeric = next(column for column in features if column.is_numeric)
    # A blank where the contract forbids one (your data may allow blanks in this column).
    required = next((column for column in features if not column.nullable), numeric)
    planted = {
        3: (numeric.name, "not a number"),
        10: (required.name, None if not required.nullable else "not a value"),
        11: (numeric.name, 1e12 if numeric.max is None else numeric.max * 10 + 1),
    }
    for row, (name, value) in planted.items():
        frame.loc[row, name] = value
    return frame, {row: name for row, (name, _) in planted.items()}


def test_scored_rows_get_the_services_answers(
    tmp_path: Path, sample: pd.DataFrame, champion: Champion
) -> None:
    source = tmp_path / "batch.csv"
    sample.to_csv(source, index=False)
    result = _score(_job(tmp_path, source, chunk_rows=100), champion)
    output = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert (result.rows, result.scored, result.rejected) == (len(sample), len(sample), 0)
    assert output["row"].tolist() == list(range(len(sample)))
    served = champion.predict_frame(sample)
    if served[0].probabilities is None:
        assert output["prediction"].tolist() == pytest.approx([p.value for p in served])
    else:
        assert output["prediction"].astype(str).tolist() == [p.value for p in served]
        for label in served[0].probabilities:
            expected = [p.probabilities[label] for p in served]  # type: ignore[index]
            assert output[f"{PROBABILITY_PREFIX}{label}"].tolist() == pytest.approx(expected)
    assert set(output["model_version"].astype(str)) == {champion.version}
    assert set(output["prediction_id"]) == {result.prediction_id}


def test_bad_rows_go_to_rejects_with_the_field_and_none_is_lost(
    tmp_path: Path, sample: pd.DataFrame, champion: Champion
) -> None:
    frame, planted = _broken(sample, champion)
    source = tmp_path / "batch.csv"
    frame.assign(id=range(len(frame))).to_csv(source, index=False)
    result = _score(_job(tmp_path, source, chunk_rows=7, keep=("id",)), champion)
    output = pd.read_csv(tmp_path / "out" / "predictions.csv")
    rejects = pd.read_csv(tmp_path / "out" / "rejects.csv")
    assert sorted(rejects["row"]) == sorted(planted)
    for row, reason in zip(rejects["row"], rejects[REASON], strict=True):
        assert reason.startswith(planted[row] + ":")
    assert sorted([*output["row"], *rejects["row"]]) == list(range(len(frame)))
    assert (output["id"] == output["row"]).all()  # --keep carries the caller's id across
    assert (result.scored, result.rejected) == (len(frame) - len(planted), len(planted))


def test_a_run_that_rejects_more_than_the_limit_says_so_with_both_files_written(
    tmp_path: Path, sample: pd.DataFrame, champion: Champion
) -> None:
    frame, planted = _broken(sample, champion)
    source = tmp_path / "batch.csv"
    frame.head(max(planted) + 1).to_csv(source, index=False)
    job = _job(tmp_path, source)
    result = _score(job, champion)
    share = len(planted) / result.rows
    assert result.too_many_rejected(share, job.rejects) is None
    refused = result.too_many_rejected(share / 2, job.rejects)
    assert refused is not None
    assert refused.startswith(f"{len(planted)} of {result.rows} rows")
    assert "--max-rejected" in refused
    assert str(job.rejects) in refused
    assert job.output.is_file()
    assert job.rejects.is_file()
    exact = ScoreResult(100, 71, 29, 0, 1.0, "1", "id", None)
    assert exact.too_many_rejected(0.29, job.rejects) is None  # 29% is not more than 0.29


def test_the_command_exits_1_when_most_rows_are_rejected(
    tmp_path: Path,
    sample: pd.DataFrame,
    champion: Champion,
    champion_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A scheduled job must fail on a broken input file, not report success."""
    monkeypatch.setenv(env_var_name(("registry", "export_dir")), str(champion_bundle))
    contract = champion.contract
    numeric = next(column for column in contract.features if column.is_numeric)
    frame = sample[contract.feature_names].head(10).astype(object)
    frame.loc[:5, numeric.name] = "not a number"  # 6 of 10 rows
    source = tmp_path / "batch.csv"
    frame.to_csv(source, index=False)
    command = ["score", str(source), "-o", str(tmp_path / "out.csv"), "--log-rows", "0"]
    refused = CliRunner().invoke(app, command)
    assert refused.exit_code == 1, refused.output
    assert "6 of 10 rows (60%) broke the data contract, more than --max-rejected (0.5)" in (
        refused.output
    )
    assert "Traceback" not in refused.output
    assert len(pd.read_csv(tmp_path / "out.rejects.csv")) == 6  # written all the same
    allowed = CliRunner().invoke(app, [*command, "--force", "--max-rejected", "0.6"])
    assert allowed.exit_code == 0, allowed.output


def test_a_rejected_row_is_written_with_the_values_it_came_with() -> None:
    """An int column with a blank is read as floats; the reject file still says 99999999."""
    contract = Contract(
        name="toy",
        target=Column(name="label", type="category", allowed=["a", "b"]),
        features=[
            Column(name="count", type="int", nullable=True, max=10),
            Column(name="size", type="float"),
        ],
    )
    rows = pd.DataFrame({"count": [99999999.0, None], "size": [1.5, 2.0]}, index=[4, 9])
    reasons = pd.Series(["count: too large", "count: blank"], index=rows.index)
    written = rejected_rows(rows, reasons, contract).to_csv(index=False)
    assert written.splitlines() == [
        "row,count,size,reason",
        "4,99999999,1.5,count: too large",
        "9,,2.0,count: blank",
    ], written
    huge = rows.assign(count=[float("inf"), 1e20])  # no Int64 holds them: written as read
    assert "inf" in rejected_rows(huge, reasons, contract).to_csv(index=False)


def test_chunks_and_shards_change_nothing_but_who_scores_what(
    tmp_path: Path, sample: pd.DataFrame, champion: Champion
) -> None:
    frame, _ = _broken(sample, champion)
    source = tmp_path / "batch.csv"
    frame.to_csv(source, index=False)
    _score(_job(tmp_path / "whole", source, chunk_rows=100_000, log_dir=None), champion)
    whole = pd.read_csv(tmp_path / "whole" / "out" / "predictions.csv")
    parts = []
    for index in range(3):
        job = _job(tmp_path / str(index), source, chunk_rows=13, shard=Shard(index, 3))
        _score(job, champion)
        part = pd.read_csv(tmp_path / str(index) / "out" / "predictions.csv")
        assert (part["row"] % 3 == index).all()
        parts.append(part)
    merged = pd.concat(parts).sort_values("row").reset_index(drop=True)
    columns = [column for column in whole.columns if column != "prediction_id"]
    pd.testing.assert_frame_equal(merged[columns], whole[columns])


def test_parquet_in_and_out(tmp_path: Path, sample: pd.DataFrame, champion: Champion) -> None:
    source = tmp_path / "batch.parquet"
    sample.to_parquet(source, index=False)
    output = tmp_path / "out" / "predictions.parquet"
    result = _score(_job(tmp_path, source, output=output, chunk_rows=50), champion)
    scored = pd.read_parquet(output)
    assert result.scored == len(scored) == len(sample)
    assert scored["row"].tolist() == list(range(len(sample)))


def test_a_shard_without_rows_writes_the_same_typed_columns(
    tmp_path: Path, sample: pd.DataFrame, champion: Champion
) -> None:
    """Shards are read together (a Parquet dataset): an empty one must not say "null"."""
    source = tmp_path / "batch.csv"
    sample.head(2).to_csv(source, index=False)
    written = {}
    for index in (0, 3):
        output = tmp_path / f"shard-{index}.parquet"
        job = _job(tmp_path, source, output=output, shard=Shard(index, 4), force=True)
        _score(job, champion)
        written[index] = pq.read_schema(output)
    assert written[3] == written[0]
    assert not any(pa.types.is_null(field.type) for field in written[3])


def test_input_columns_named_as_outputs_keep_their_values(
    tmp_path: Path, sample: pd.DataFrame, champion: Champion
) -> None:
    """A column called row or reason in the input, or a kept one called prediction, is
    renamed "NAME (input)" rather than overwritten or crashing the run."""
    frame, planted = _broken(sample, champion)
    ids = [f"id-{row}" for row in range(len(frame))]
    frame = frame.assign(row=ids, reason="as sent", prediction=ids)
    source = tmp_path / "batch.csv"
    frame.to_csv(source, index=False)
    _score(_job(tmp_path, source, keep=("row", "prediction")), champion)
    output = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert (output["row (input)"] == [f"id-{row}" for row in output["row"]]).all()
    assert (output["prediction (input)"] == output["row (input)"]).all()
    rejects = pd.read_csv(tmp_path / "out" / "rejects.csv")
    assert sorted(rejects["row"]) == sorted(planted)
    assert (rejects["reason (input)"] == "as sent").all()
    assert rejects["reason"].str.contains(":").all()


def test_an_output_that_cannot_be_written_is_one_line_and_leaves_no_file(
    tmp_path: Path, sample: pd.DataFrame, champion: Champion
) -> None:
    source = tmp_path / "batch.csv"
    sample.head(5).to_csv(source, index=False)
    folder = tmp_path / "taken"
    folder.mkdir()
    with pytest.raises(ProjectError, match="taken is a folder; fix: name a file"):
        _score(_job(tmp_path, source, output=folder, force=True), champion)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ProjectError, match=r"a-file.*; fix: make the input readable"):
        _score(_job(tmp_path, source, output=blocker / "out.csv"), champion)
    assert not list(tmp_path.rglob("*.partial"))


def test_true_and_false_are_not_numbers_however_the_column_is_typed() -> None:
    """A chunk holding True only comes typed bool; pandas would turn it into 1."""
    contract = Contract(
        name="toy",
        target=Column(name="label", type="category", allowed=["a", "b"]),
        features=[Column(name="size", type="float")],
    )
    for values in ([True, False], pd.array([True, None], dtype="boolean"), [True, 12.0]):
        _, reasons = checked_rows(pd.DataFrame({"size": values}), contract)
        assert reasons.iloc[0] == "size: True is not a number", values


def test_the_log_sample_is_bounded_and_joins_the_output(
    tmp_path: Path, sample: pd.DataFrame, champion: Champion
) -> None:
    source = tmp_path / "batch.csv"
    sample.to_csv(source, index=False)
    result = _score(_job(tmp_path, source, chunk_rows=31, log_rows=40), champion)
    window = read_log_window(tmp_path / "log", champion.contract, 10_000)
    assert result.logged == len(window.frame) == 40
    # pandas' default float parser can be one ULP off; the written text is exact.
    written = pd.read_csv(tmp_path / "out" / "predictions.csv", float_precision="round_trip")
    output = written.set_index("row")
    logged = window.frame.set_index("row")
    assert logged.index.is_unique
    assert logged.index.is_monotonic_increasing
    assert set(logged["prediction_id"]) == {result.prediction_id}
    assert logged["prediction"].astype(str).tolist() == (
        output.loc[logged.index, "prediction"].astype(str).tolist()
    )
    # The same row by the project's own identity (text categories and codes included).
    names = champion.contract.feature_names
    assert row_keys(logged, names).tolist() == row_keys(sample.loc[logged.index], names).tolist()


def test_existing_output_is_kept_and_a_failed_run_leaves_no_file(
    tmp_path: Path, sample: pd.DataFrame, champion: Champion
) -> None:
    source = tmp_path / "batch.csv"
    sample.to_csv(source, index=False)
    job = _job(tmp_path, source)
    _score(job, champion)
    before = job.output.read_bytes()
    with pytest.raises(ProjectError, match="already exists; fix: pass --force"):
        _score(job, champion)
    assert job.output.read_bytes() == before
    unreadable = tmp_path / "missing-column.csv"
    sample.drop(columns=champion.contract.feature_names[0]).to_csv(unreadable, index=False)
    failed = _job(tmp_path / "failed", unreadable)
    with pytest.raises(ProjectError, match="missing contract columns"):
        _score(failed, champion)
    assert not list((tmp_path / "failed").rglob("*.csv*"))
    names = champion.contract.feature_names
    featureless = tmp_path / "no-features.csv"
    sample.drop(columns=names).assign(other=1).to_csv(featureless, index=False)
    left_out = f" and {len(names) - 5} more;" if len(names) > 5 else ";"
    with pytest.raises(ProjectError, match=re.escape(f"{', '.join(names[:5])}{left_out}")):
        _score(_job(tmp_path / "failed", featureless), champion)


# A contract with every column type, to hold the table checks to the API's rules.
EVERY_TYPE = Contract(
    name="every_type",
    target=Column(name="y", type="float"),
    features=[
        Column(name="ratio", type="float", min=0.0, max=1.0),
        Column(name="count", type="int", min=0, max=100, nullable=True),
        Column(name="free", type="float"),
        Column(name="colour", type="category", allowed=["red", "green"]),
        Column(name="code", type="category", allowed=["1", "2"], nullable=True),
    ],
)
CELLS: dict[str, list[str]] = {
    "ratio": ["0.5", "0", "1", "1.5", "-0.1", "abc", "", "inf", "1e-3"],
    "count": ["3", "3.0", "2.5", "101", "-1", "", "x", "100"],
    "free": ["1e300", "-7", "", "nan", "inf", "-inf", "12.5", "two"],
    "colour": ["red", "green", "blue", "", "Red", "1"],
    "code": ["1", "2", "1.0", "3", "", "2.00", "one"],
}


def _as_json(column: Column, cell: str) -> Any:
    """The value a JSON client would send for a CSV cell: numbers as numbers, blanks as null."""
    if cell in {"", "nan"}:
        return None
    try:
        number = float(cell)
    except ValueError:
        return cell
    if column.type == "category" and not math.isfinite(number):
        return cell
    return cell if column.type == "category" and not number.is_integer() else number


def test_table_checks_refuse_exactly_what_the_api_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(row_checks, "MAX_PROBLEMS", len(EVERY_TYPE.features))  # name every one
    chooser = random.Random(7)  # noqa: S311 - test data, not secrets
    rows = [{column: chooser.choice(cells) for column, cells in CELLS.items()} for _ in range(400)]
    source = tmp_path / "cells.csv"
    pd.DataFrame(rows).to_csv(source, index=False)
    [frame] = list(read_table_chunks(source, EVERY_TYPE, 1000))
    _, reasons = checked_rows(frame, EVERY_TYPE)
    schemas = RequestSchemas(EVERY_TYPE, max_batch_rows=10)
    columns = {column.name: column for column in EVERY_TYPE.features}
    for row, cells in enumerate(rows):
        record = {name: _as_json(columns[name], cell) for name, cell in cells.items()}
        try:
            schemas.one.validate_python(record)
            api_refuses = set()
        except ValidationError as error:
            api_refuses = {str(problem["loc"][0]) for problem in error.errors()}
        table_refuses = {part.split(":")[0] for part in reasons[row].split("; ") if part}
        assert table_refuses == api_refuses, (cells, reasons[row])


def test_a_reason_names_the_first_problems_and_counts_the_rest() -> None:
    fine = {"ratio": "0.5", "free": "1", "colour": "red"}  # count and code are nullable
    frame = pd.DataFrame([dict.fromkeys(CELLS, "x"), fine])
    _, reasons = checked_rows(frame, EVERY_TYPE)
    first = reasons[0].split("; ")
    assert [part.split(":")[0] for part in first[:-1]] == ["ratio", "count", "free"]
    assert first[-1] == f"and {len(CELLS) - row_checks.MAX_PROBLEMS} more"
    assert reasons[1] == ""
