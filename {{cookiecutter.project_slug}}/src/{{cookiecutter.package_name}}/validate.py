"""Stage `validate`: the data validation gate, a Great Expectations suite built from the contract.

Great Expectations takes seconds to import, so it is imported only inside the functions here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from .contract import Column, Contract
from .privacy import opt_out
from .row_checks import shown
from .tabular import read_table
from .validation_report import render

SUITE_NAME = "data_contract"
MAX_EXAMPLES = 5
# Examples of these failures say nothing (every example of a null is None).
_NO_EXAMPLES = {"expect_column_values_to_not_be_null"}
TYPE_NAMES = {
    # numpy and pandas dtype names (whole-column check) and scalar type names (per-row check on
    # mixed columns); Int64Dtype is pandas' nullable integer. A float column may hold whole numbers.
    "float": ["float64", "float32", "float", "int64", "int32", "Int64Dtype", "int"],
    "int": ["int64", "int32", "Int64Dtype", "int"],
}


@dataclass(frozen=True)
class Failure:
    """One broken expectation, in words a person can act on."""

    check: str
    column: str | None
    problem: str
    unexpected_rows: int | None = None
    examples: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class ValidationOutcome:
    """The gate's verdict on one data file."""

    data_path: str
    rows: int
    evaluated: int
    failures: list[Failure]
    report_json: str
    report_html: str

    @property
    def success(self) -> bool:
        """Whether every expectation held."""
        return not self.failures


def _column_expectations(column: Column, gxe: ModuleType) -> list[Any]:
    expectations = [gxe.ExpectColumnToExist(column=column.name)]
    if not column.nullable:
        expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=column.name))
    if column.type in TYPE_NAMES:
        expectations.append(
            gxe.ExpectColumnValuesToBeInTypeList(
                column=column.name, type_list=TYPE_NAMES[column.type]
            )
        )
    if column.min is not None or column.max is not None:
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=column.name, min_value=column.min, max_value=column.max
            )
        )
    if column.allowed is not None:
        expectations.append(
            gxe.ExpectColumnValuesToBeInSet(column=column.name, value_set=column.allowed)
        )
    return expectations


def build_expectations(contract: Contract, min_rows: int, every_class: bool = True) -> list[Any]:
    """The suite's expectations: table shape, every column's contract, and the target's classes.

    `every_class`: the data must hold each of the target's classes (a training set); a batch of
    newly labelled rows need not (the pool it joins is checked whole by the pipeline).
    """
    import great_expectations.expectations as gxe

    expectations = [
        gxe.ExpectTableRowCountToBeBetween(min_value=min_rows),
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[column.name for column in contract.columns],
            exact_match=not contract.allow_extra_columns,
        ),
    ]
    for column in contract.columns:
        expectations.extend(_column_expectations(column, gxe))
    if contract.target.allowed is not None and every_class:
        # A training set missing a class cannot teach it.
        expectations.append(
            gxe.ExpectColumnDistinctValuesToContainSet(
                column=contract.target.name, value_set=contract.target.allowed
            )
        )
    return expectations


def _describe(  # noqa: PLR0911 - one branch per expectation type
    kind: str, kwargs: dict[str, Any], result: dict[str, Any], rows: int
) -> str:
    count = result.get("unexpected_count")
    observed = result.get("observed_value")
    if kind == "expect_column_to_exist":
        return "column is missing"
    if kind == "expect_table_row_count_to_be_between":
        return (
            f"has {observed} rows; at least {kwargs.get('min_value')} are required "
            "(validation.min_rows); fix: supply more rows, or lower validation.min_rows in "
            "params.yaml knowing the figures get noisier"
        )
    if kind == "expect_table_columns_to_match_set":
        details = result.get("details", {}).get("mismatched", {})
        parts = [
            f"{label}: {', '.join(map(str, details[key]))}"
            for key, label in (("unexpected", "unexpected columns"), ("missing", "missing columns"))
            if details.get(key)
        ]
        return "; ".join(parts) or f"columns are {observed}"
    if kind == "expect_column_values_to_not_be_null":
        return f"{count} of {rows} rows are null"
    if kind == "expect_column_values_to_be_in_type_list":
        if count is None:
            return f"column type is {observed}, not one of {', '.join(kwargs['type_list'])}"
        expected = "numbers" if "float" in kwargs["type_list"] else "whole numbers"
        return f"{count} of {rows} rows are not {expected}"
    if kind == "expect_column_values_to_be_between":
        bounds = f"[{kwargs.get('min_value')}, {kwargs.get('max_value')}]"
        return f"{count} of {rows} rows are outside {bounds}"
    if kind == "expect_column_values_to_be_in_set":
        return f"{count} of {rows} rows are not in the allowed set {kwargs.get('value_set')}"
    if kind == "expect_column_distinct_values_to_contain_set":
        missing = sorted(set(kwargs.get("value_set", [])) - set(observed or []))
        return f"classes never seen: {', '.join(map(str, missing))}"
    return f"failed (observed {observed!r})"


def _exception_message(info: dict[str, Any]) -> str | None:
    """GX reports errors either flat or keyed by metric; return the first message, if any."""
    candidates = [info, *(value for value in info.values() if isinstance(value, dict))]
    for candidate in candidates:
        if candidate.get("raised_exception") or candidate.get("exception_message"):
            message = str(candidate.get("exception_message") or "error")
            return message.strip().splitlines()[-1]
    return None


def summarise(results: list[dict[str, Any]], rows: int) -> list[Failure]:
    """Turn GX results into failures, minus knock-on errors of a missing or mistyped column."""
    failures: list[Failure] = []
    errored: list[tuple[str, str | None, str]] = []
    for outcome in results:
        if outcome["success"]:
            continue
        config = outcome["expectation_config"]
        kind, kwargs = config["type"], config["kwargs"]
        column = kwargs.get("column")
        error = _exception_message(outcome.get("exception_info") or {})
        if error is not None:
            errored.append((kind, column, error))
            continue
        result = outcome.get("result") or {}
        examples = [] if kind in _NO_EXAMPLES else (result.get("partial_unexpected_list") or [])
        failures.append(
            Failure(
                kind,
                column,
                _describe(kind, kwargs, result, rows),
                result.get("unexpected_count"),
                examples,
            )
        )
    explained = {failure.column for failure in failures}
    failures.extend(
        Failure(kind, column, f"could not be checked: {error}")
        for kind, column, error in errored
        if column not in explained
    )
    return failures


def _run_checkpoint(
    frame: pd.DataFrame, contract: Contract, min_rows: int, every_class: bool
) -> dict[str, Any]:
    """Run the suite in a throwaway GX context; return the result as JSON-ready data."""
    opt_out()  # no network calls from the gate
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("files")
        .add_dataframe_asset(contract.name)
        .add_batch_definition_whole_dataframe("whole_file")
    )
    # The suite is built whole, then added once: adding expectations one by one to a stored
    # suite compares each with all before it and saves it, quadratic in the expectations
    # (126 on the 30-column sample: 9 s of a 17 s validate stage).
    expectations = build_expectations(contract, min_rows, every_class)
    suite = context.suites.add(gx.ExpectationSuite(name=SUITE_NAME, expectations=expectations))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=contract.name, data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name="validation_gate",
            validation_definitions=[definition],
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": MAX_EXAMPLES},
        )
    )
    run = checkpoint.run(batch_parameters={"dataframe": frame})
    validation = next(iter(run.run_results.values()))
    result: dict[str, Any] = validation.to_json_dict()  # type: ignore[no-untyped-call]  # GX untyped
    return result


def validate_file(
    data_path: Path,
    contract: Contract,
    min_rows: int,
    report_dir: Path,
    every_class: bool = True,
) -> ValidationOutcome:
    """Validate one CSV against the contract; write JSON and HTML reports under `report_dir`.

    `every_class`: see `build_expectations`.
    """
    frame = read_table(data_path, contract)
    report_dir.mkdir(parents=True, exist_ok=True)
    details = _run_checkpoint(frame, contract, min_rows, every_class)
    failures = summarise(details["results"], len(frame))
    outcome = ValidationOutcome(
        data_path=str(data_path),
        rows=len(frame),
        evaluated=int(details["statistics"]["evaluated_expectations"]),
        failures=failures,
        report_json=str(report_dir / "validation.json"),
        report_html=str(report_dir / "validation.html"),
    )
    summary = {**asdict(outcome), "success": outcome.success, "failed": len(failures)}
    (report_dir / "gx_result.json").write_text(json.dumps(details, indent=2, default=str))
    Path(outcome.report_json).write_text(json.dumps(summary, indent=2, default=str))
    page = render(details, str(data_path), len(frame))
    Path(outcome.report_html).write_text(page, encoding="utf-8")
    return outcome


def format_outcome(outcome: ValidationOutcome) -> str:
    """A short, readable verdict: one line per failure with the column, row count and examples."""
    head = f"{outcome.data_path}: {outcome.rows} rows, {outcome.evaluated} checks"
    if outcome.success:
        return f"{head}: all passed"
    lines = [f"{head}: {len(outcome.failures)} failed"]
    for failure in outcome.failures:
        where = f"column '{failure.column}'" if failure.column else "table"
        # Cut like a reject reason's value: a 1 MB cell must not be a 1 MB line.
        examples = f" (e.g. {', '.join(map(shown, failure.examples))})" if failure.examples else ""
        lines.append(f"  - {where}: {failure.problem}{examples}  [{failure.check}]")
    lines.append(f"reports: {outcome.report_json}, {outcome.report_html}")
    return "\n".join(lines)
