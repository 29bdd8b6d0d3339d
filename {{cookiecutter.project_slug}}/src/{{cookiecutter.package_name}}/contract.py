"""The data contract: one file declaring the target and the features, their types and ranges.

Everything that touches data reads it: the validation suite, the training pipeline, the API
schema and the drift monitor.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from .errors import ProjectError
from .settings import describe_validation_error

ColumnType = Literal["float", "int", "category"]
# Every contract file starts with this: the one place each key is documented.
HEADER = """\
# The data contract: the one description of the data. Validation (Great Expectations), training,
# the API's request schema and drift monitoring all read it. Keys:
#   name, description     the dataset; the description is shown in the API docs and model card
#   allow_extra_columns   true: CSVs may carry columns not listed here (they are ignored)
#   target, features      one entry per column, features in the model's input order:
#     name                the CSV header (and the API field)
#     type                float | int | category
#     description         what the column measures (API docs, model card)
#     nullable            true: blanks allowed; the API takes null but still requires the field
#                         (features only: rows without a target value are left out by prepare)
#     min, max            numbers only: the accepted range (the gate and the API enforce it)
#     allowed             categories only: every accepted value, as text ("3" for the code 3,
#                         which clients may send as 3, 3.0 or "3")
#   slices                optional: groups of rows evaluate scores apart (sensitive attributes,
#                         business segments); the gap between groups is gated (params.yaml:
#                         evaluate.slices) and reported in the model card. One entry per slice:
#     column              a feature; a category column gives one group per value
#     bands               numbers only, required for them: ascending cut points (e.g. [12, 15]
#                         gives "below 12", "12 to 15", "15 and above")
#     description         why this slice matters (model card)
#   model_card            optional: what the model card says beyond the figures:
#     citation            where the data comes from and how to cite it
#     intended_use        who the model is for and which decisions it supports
#     out_of_scope        uses it must not be put to (a list)
#     ethical_considerations  risks to people, sensitive data, known biases (a list)
#     caveats             what a user should know or do before relying on it (a list)
# Propose one for a CSV:
#   {package} profile data/external/<file>.csv --target <column> -o contract.yaml --force
# then review the ranges and allowed values: they are what the validation gate enforces.
""".format(package=__name__.partition(".")[0])


def nfc(name: str) -> str:
    """`name` in Unicode's composed form (NFC): editors and systems write "é" either way."""
    return unicodedata.normalize("NFC", name)


# A column's name as every file reader names it (tabular.py): "é" typed as "e" and a combining
# accent is the same column.
ColumnName = Annotated[str, Field(min_length=1), AfterValidator(nfc)]


class Column(BaseModel):
    """One column of the data: its type, whether it may be null, and the values it may take."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ColumnName
    type: ColumnType
    description: str = ""
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[str] | None = None

    @model_validator(mode="after")
    def _check_constraints(self) -> Self:
        if self.type == "category":
            if not self.allowed:
                raise ValueError(f"category column '{self.name}' needs a non-empty 'allowed' list")
            if len(set(self.allowed)) != len(self.allowed):
                raise ValueError(f"column '{self.name}': 'allowed' has duplicate values")
            if self.min is not None or self.max is not None:
                raise ValueError(f"category column '{self.name}' cannot have 'min' or 'max'")
        elif self.allowed is not None:
            raise ValueError(f"numeric column '{self.name}' cannot have 'allowed'; use min/max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"column '{self.name}': min {self.min} is greater than max {self.max}")
        return self

    @property
    def is_numeric(self) -> bool:
        """Whether values are numbers (float or int) rather than categories."""
        return self.type != "category"


class Slice(BaseModel):
    """Rows grouped by one feature: its categories, or bands of a number."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: ColumnName
    bands: list[float] | None = None
    description: str = ""

    @model_validator(mode="after")
    def _check_bands(self) -> Self:
        if self.bands is not None and (
            not self.bands or any(b >= a for a, b in zip(self.bands[1:], self.bands, strict=False))
        ):
            raise ValueError(f"slice '{self.column}': bands must be ascending cut points")
        return self


class CardText(BaseModel):
    """The model card's words that no run can know: the data's origin, the uses, the risks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    citation: str = ""
    intended_use: str = ""
    out_of_scope: list[str] = Field(default_factory=list)
    ethical_considerations: list[str] = Field(default_factory=list)
    caveats: list[str] = Field(default_factory=list)


class Contract(BaseModel):
    """The whole contract: a target, the features a model may use, the slices to judge it on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    target: Column
    features: list[Column] = Field(min_length=1)
    allow_extra_columns: bool = False
    slices: list[Slice] = Field(default_factory=list)
    model_card: CardText = Field(default_factory=CardText)

    @model_validator(mode="after")
    def _check_unique_names(self) -> Self:
        names = [column.name for column in self.columns]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"column names must be unique; repeated: {', '.join(duplicates)}")
        return self

    @model_validator(mode="after")
    def _check_target(self) -> Self:
        if self.target.nullable:
            raise ValueError(
                f"target '{self.target.name}' is nullable, but a row without a label cannot be "
                "learnt from or judged; fix: set its nullable to false (`prepare` leaves "
                "unlabelled rows out and counts them)"
            )
        return self

    @model_validator(mode="after")
    def _check_slices(self) -> Self:
        by_name = {column.name: column for column in self.features}
        for entry in self.slices:
            column = by_name.get(entry.column)
            if column is None:
                raise ValueError(
                    f"slice '{entry.column}' is not a feature; fix: name one of the features"
                )
            if column.is_numeric and entry.bands is None:
                middle = ((column.min or 0) + (column.max or 0)) / 2
                raise ValueError(
                    f"slice '{entry.column}' is numeric; fix: give its bands (ascending cut "
                    f"points), e.g. [{middle:g}]"
                )
            if not column.is_numeric and entry.bands is not None:
                raise ValueError(
                    f"slice '{entry.column}' is a category: one group per value; fix: drop bands"
                )
        return self

    @property
    def columns(self) -> list[Column]:
        """Features first, then the target."""
        return [*self.features, self.target]

    @property
    def feature_names(self) -> list[str]:
        """Names of the model's input columns, in contract order."""
        return [column.name for column in self.features]


def load_contract(path: Path) -> Contract:
    """Read and check a contract file; every problem names the field and the fix."""
    if not path.is_file():
        raise ProjectError(
            f"data contract {path} not found; fix: set contract_path in params.yaml, "
            "or propose one with the 'profile' command"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ProjectError(f"data contract {path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ProjectError(f"data contract {path} must be a YAML mapping with target and features")
    try:
        return Contract.model_validate(raw)
    except ValidationError as error:
        raise ProjectError(describe_validation_error(error, str(path), from_env=False)) from None


class _InlineMapping(dict[str, Any]):
    """A column entry, dumped on one line so a contract reads as a table."""


class _ContractDumper(yaml.SafeDumper):
    pass


_ContractDumper.add_representer(
    _InlineMapping,
    lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True),
)


def _column_entry(column: Column) -> _InlineMapping:
    entry = column.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    entry["nullable"] = column.nullable  # the one default worth reading in every entry
    for bound in ("min", "max"):
        if isinstance(entry.get(bound), float) and entry[bound].is_integer():
            entry[bound] = int(entry[bound])
    return _InlineMapping(entry)


def dump_contract(contract: Contract) -> str:
    """The contract as YAML, one line per column, in declaration order."""
    document: dict[str, Any] = {"name": contract.name}
    if contract.description:
        document["description"] = contract.description
    document["target"] = _column_entry(contract.target)
    document["features"] = [_column_entry(column) for column in contract.features]
    if contract.allow_extra_columns:
        document["allow_extra_columns"] = True
    if contract.slices:
        document["slices"] = [
            _InlineMapping(entry.model_dump(mode="json", exclude_none=True, exclude_defaults=True))
            for entry in contract.slices
        ]
    card = contract.model_card.model_dump(mode="json", exclude_defaults=True)
    if card:
        document["model_card"] = card
    dumped: str = yaml.dump(
        document, Dumper=_ContractDumper, sort_keys=False, allow_unicode=True, width=200
    )
    return HEADER + dumped


def save_contract(contract: Contract, path: Path, *, overwrite: bool = False) -> None:
    """Write the contract; an existing file is kept unless `overwrite` is set."""
    if path.exists() and not overwrite:
        raise ProjectError(f"{path} already exists; fix: pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_contract(contract), encoding="utf-8")
