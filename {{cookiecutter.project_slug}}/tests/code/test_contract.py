"""The data contract model rejects inconsistent contracts and round-trips through YAML."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from {{ cookiecutter.package_name }}.contract import (
    HEADER,
    CardText,
    Column,
    Contract,
    Slice,
    dump_contract,
    load_contract,
    save_contract,
)
from {{ cookiecutter.package_name }}.errors import (
    ProjectError,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def small_contract() -> Contract:
    return Contract(
        name="toy",
        target=Column(name="label", type="category", allowed=["no", "yes"]),
        features=[
            Column(name="size", type="float", min=0, max=10.5, description="Size in cm"),
            Column(name="count", type="int", min=0, max=9, nullable=True),
            Column(name="colour", type="category", allowed=["red", "blue"]),
        ],
    )


def test_category_needs_allowed_values() -> None:
    with pytest.raises(ValidationError, match="needs a non-empty 'allowed' list"):
        Column(name="colour", type="category")


def test_numeric_column_cannot_have_allowed_values() -> None:
    with pytest.raises(ValidationError, match="cannot have 'allowed'"):
        Column(name="size", type="float", allowed=["1"])


def test_min_above_max_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"min 5\.0 is greater than max 1\.0"):
        Column(name="size", type="float", min=5, max=1)


def test_duplicate_column_names_are_rejected() -> None:
    column = Column(name="size", type="float")
    with pytest.raises(ValidationError, match="repeated: size"):
        Contract(name="toy", target=Column(name="size", type="float"), features=[column])


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    path = tmp_path / "contract.yaml"
    save_contract(small_contract(), path)
    assert load_contract(path) == small_contract()
    # One line per column keeps the file readable as a table.
    assert (
        "- {name: size, type: float, description: Size in cm, min: 0, max: 10.5, nullable: false}"
        in (dump_contract(small_contract()))
    )


def test_existing_contract_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "contract.yaml"
    path.write_text("keep me")
    with pytest.raises(ProjectError, match="already exists; fix: pass --force"):
        save_contract(small_contract(), path)
    assert path.read_text() == "keep me"


def test_load_names_the_bad_field(tmp_path: Path) -> None:
    path = tmp_path / "contract.yaml"
    path.write_text(dump_contract(small_contract()).replace("type: float", "type: decimal"))
    with pytest.raises(ProjectError, match=r"setting 'features\.0\.type' = 'decimal'"):
        load_contract(path)


def test_a_nullable_target_is_refused_with_the_fix(tmp_path: Path) -> None:
    """It used to pass the gate and end `train` in pandas' "boolean value of NA" traceback."""
    path = tmp_path / "contract.yaml"
    lines = dump_contract(small_contract()).splitlines()
    target = next(index for index, line in enumerate(lines) if line.startswith("target:"))
    lines[target] = lines[target].replace("nullable: false", "nullable: true")
    path.write_text("\n".join(lines) + "\n")
    fixed = r"target 'label' is nullable.*fix: set its nullable to false"
    with pytest.raises(ProjectError, match=fixed):
        load_contract(path)


def test_load_reports_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="not found; fix: set contract_path"):
        load_contract(tmp_path / "absent.yaml")


def test_every_contract_documents_its_keys_in_one_header(tmp_path: Path) -> None:
    project_contract = (PROJECT_ROOT / "contract.yaml").read_text()
    assert project_contract.startswith(HEADER)
    entries = re.findall(r"^#\s+([a-z_]+(?:, [a-z_]+)*)\s{2,}", HEADER, re.MULTILINE)
    documented = {key for entry in entries for key in entry.split(", ")}
    keys = set().union(*(model.model_fields for model in (Contract, Column, Slice, CardText)))
    assert keys - documented == set()
    path = tmp_path / "proposed.yaml"
    # The project's contract (yours may state no card words yet), with some words for sure.
    project = load_contract(PROJECT_ROOT / "contract.yaml")
    words = project.model_card.model_copy(
        update={"intended_use": "Ranking for review.", "out_of_scope": ["Unreviewed decisions"]}
    )
    sample = project.model_copy(update={"model_card": words})
    save_contract(sample, path)
    assert path.read_text().startswith(HEADER)
    # A saved contract reads back the same: its slices and the card's words included.
    assert load_contract(path) == sample
