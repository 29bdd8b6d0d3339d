"""Reading CSV files the way every stage expects them, with clear errors for unreadable files."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from .contract import Contract, nfc
from .errors import ProjectError, listed

_SNIFF_BYTES = 8192
_CHUNK_ROWS = 100_000
PARQUET_SUFFIXES = (".parquet", ".pq")
# Separators spreadsheets export instead of commas; read as CSV, the whole header is one column.
OTHER_SEPARATORS = (";", "\t", "|")


class DataFileError(ProjectError):
    """A data file that cannot be read as a CSV table."""


def _check_is_file(path: Path) -> None:
    if path.is_dir():
        raise DataFileError(f"{path}: is a folder, not a file; fix: name the data file in it")
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")


def _check_unique(names: Iterable[str], path: Path) -> None:
    """Refuse a repeated column name: which copy is meant cannot be guessed.

    pandas would read the first copy as the column and rename the others.
    """
    counts = Counter(nfc(name) for name in names if name)
    repeated = [repr(name) for name, count in counts.items() if count > 1]
    if repeated:
        raise DataFileError(
            f"{path}: the header repeats column {listed(repeated)}; fix: give each column its "
            "own name, keeping the copy you mean"
        )


def _check_header(head: bytes, path: Path) -> None:
    """Check the header line: commas as separators, each name once."""
    line, newline, _ = head.partition(b"\n")
    header = line.decode("utf-8-sig", errors="replace").rstrip("\r")
    _check_separator(header, path)
    names = next(csv.reader([header]), [])
    _check_unique(names if newline else names[:-1], path)  # a cut last name is not a name


def _check_is_text(path: Path) -> None:
    _check_is_file(path)
    if path.stat().st_size == 0:
        raise DataFileError(f"{path}: file is empty (0 bytes); expected a CSV with a header row")
    with path.open("rb") as stream:
        head = stream.read(_SNIFF_BYTES)
    if b"\x00" in head:
        raise DataFileError(
            f"{path}: not a CSV file (binary content); expected comma-separated text"
        )
    _check_header(head, path)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut at the sniff boundary is not an encoding problem.
        if error.start < len(head) - 4:
            raise DataFileError(
                f"{path}: not UTF-8 text ({error.reason}); save it as UTF-8 CSV"
            ) from None


def _as_numbers_where_possible(values: pd.Series, *, whole: bool) -> pd.Series:
    """Parse numbers but keep unparseable values as they are, so a type check can point at them."""
    parsed = pd.to_numeric(values, errors="coerce")
    keep_original = parsed.isna() & values.notna()
    numbers = parsed.astype(object)
    if whole:  # built as objects: pandas would turn ints beside a NaN back into floats
        numbers = pd.Series(
            [int(n) if float(n).is_integer() else n for n in numbers],
            index=values.index,
            dtype=object,
        )
    return numbers.where(~keep_original, values)


def _as_category_text(values: pd.Series) -> pd.Series:
    """Categories as text. Codes read as floats (a blank turns 3 into 3.0) are the text "3"."""
    if values.dtype.kind == "f":
        present = values.dropna()
        if (present == present.round()).all():
            values = values.astype("Int64")
    return values.astype("string")


def apply_contract_types(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Type the contract's columns present in `frame` as every stage reads them."""
    for column in contract.columns:
        if column.name not in frame.columns:
            continue
        values = frame[column.name]
        if not column.is_numeric:
            frame[column.name] = _as_category_text(values)
        elif values.dtype == object:
            frame[column.name] = _as_numbers_where_possible(values, whole=column.type == "int")
        elif column.type == "int" and values.dtype.kind == "f":
            whole = values.dropna()
            if (whole == whole.round()).all():
                # Nulls turn int columns into floats when read; the nullable Int64 undoes that.
                frame[column.name] = values.astype("Int64")
    return frame


@contextmanager
def _csv_errors_named(path: Path) -> Iterator[None]:
    """Re-raise decoding and parsing errors as one line naming the file and the problem."""
    try:
        yield
    except UnicodeDecodeError as error:
        raise DataFileError(
            f"{path}: not UTF-8 text ({error.reason}); save it as UTF-8 CSV"
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        reason = str(error).strip().splitlines()[0]
        raise DataFileError(f"{path}: not a readable CSV ({reason})") from None


def _nfc_header(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its column names in the contract's Unicode form (`contract.nfc`)."""
    frame.columns = [nfc(name) if isinstance(name, str) else name for name in frame.columns]
    return frame


def _check_separator(header: str, path: Path) -> None:
    """Refuse a header line without a comma that holds another separator (`a;b;c`).

    Checked on the raw line, before parsing: with decimal commas (`1,5;2,3`) pandas would fail
    on the rows first and blame the CSV, not the separator.
    """
    if "," in header:
        return
    for separator in OTHER_SEPARATORS:
        if separator in header:
            raise DataFileError(
                f"{path}: the header {header[:60]!r} is separated by {separator!r}, not "
                "commas; fix: save it as comma-separated CSV"
            )


def require_columns(
    columns: Iterable[object],
    required: Sequence[str],
    source: Path | str,
    fix: str,
    error: type[ProjectError] = ProjectError,
    kind: str = "contract columns",
) -> None:
    """Raise `error` naming the `required` columns missing from `columns`, and the fix."""
    present = set(map(str, columns))
    missing = [name for name in required if name not in present]
    if missing:
        near = _near(missing, present)
        raise error(f"{source}: missing {kind} {listed(missing)}{near}; fix: {fix}")


def _near(missing: list[str], present: set[str]) -> str:
    """A hint naming the columns that differ from missing ones only by spaces or case."""
    loose = {name.strip().casefold(): name for name in present}
    keys = (name.strip().casefold() for name in missing)
    near = [repr(loose[key]) for key in keys if key in loose]
    return f" (the file has {listed(near)}: mind spaces and case)" if near else ""


def require_features(
    columns: Iterable[object],
    contract: Contract,
    source: Path | str,
    error: type[ProjectError] = ProjectError,
) -> None:
    """Raise `error` unless `columns` hold every feature of the contract (others are ignored)."""
    fix = "supply every feature the contract names (extra columns are ignored)"
    require_columns(columns, contract.feature_names, source, fix, error)


def read_table(path: Path, contract: Contract | None = None) -> pd.DataFrame:
    """Read a CSV; with a contract, type its columns and check it is the right kind of file."""
    _check_is_text(path)
    with _csv_errors_named(path):
        frame = _nfc_header(pd.read_csv(path, encoding="utf-8", low_memory=False))
    if contract is None:
        return frame
    return _typed(frame, path, contract)


class RowSample:
    """A seeded uniform sample of at most `size` rows of the frames offered one after another.

    Every row draws a random key; the rows with the smallest keys so far are a uniform sample
    of the rows offered so far, so memory is bounded by `size`, not by the stream.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self._random = np.random.default_rng(seed)
        self._keys = np.empty(0)
        self.frame = pd.DataFrame()  # the sample, in the order offered

    def offer(self, frame: pd.DataFrame) -> None:
        """Consider `frame`'s rows for the sample."""
        keys = self._random.random(len(frame))
        if self.size == 0 or frame.empty:
            return
        if len(frame) > self.size:  # only a frame's own smallest keys can make the sample
            mine = np.sort(np.argpartition(keys, self.size - 1)[: self.size])
            frame, keys = frame.iloc[mine], keys[mine]
        self.frame = pd.concat([self.frame, frame]) if len(self.frame) else frame
        self._keys = np.concatenate([self._keys, keys])
        if len(self.frame) > self.size:
            smallest = np.argpartition(self._keys, self.size - 1)[: self.size]
            self.frame, self._keys = self.frame.iloc[smallest], self._keys[smallest]


def read_table_sample(
    path: Path, contract: Contract, max_rows: int, seed: int
) -> tuple[pd.DataFrame, int]:
    """At most `max_rows` rows of a CSV and the file's row count.

    The rows are drawn uniformly (seeded, `RowSample`) while the file is read in chunks, so
    memory is bounded by `max_rows`, not the file. A file that fits is returned whole, in order,
    as `read_table` reads it.
    """
    _check_is_text(path)
    sample = RowSample(max_rows, seed)
    total = 0
    with (
        _csv_errors_named(path),
        pd.read_csv(path, encoding="utf-8", low_memory=False, chunksize=_CHUNK_ROWS) as chunks,
    ):
        for chunk in map(_nfc_header, chunks):
            chunk.index = pd.RangeIndex(total, total + len(chunk))
            total += len(chunk)
            sample.offer(chunk)
    if total == 0:  # a header alone: the columns, no rows
        return read_table(path, contract), 0
    # Chunks infer types separately; concatenated, they widen as one read would (int with
    # float is float, anything with text is object), and the contract types them as usual.
    return _typed(sample.frame.sort_index(), path, contract), total


def read_table_chunks(path: Path, contract: Contract, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """A CSV or Parquet file in chunks of at most `chunk_rows` rows, indexed by row from 0.

    Categories are read as text (code 3 stays "3", as in the contract); other columns as the
    reader infers them, so a clean numeric column costs no per-value Python work.
    """
    if path.suffix.lower() in PARQUET_SUFFIXES:
        yield from _parquet_chunks(path, chunk_rows)
        return
    text = {column.name: str for column in contract.features if not column.is_numeric}
    _check_is_text(path)
    with (
        _csv_errors_named(path),
        pd.read_csv(
            path, encoding="utf-8", dtype=text, low_memory=False, chunksize=chunk_rows
        ) as chunks,
    ):
        yield from map(_nfc_header, chunks)


def _parquet_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    try:
        import pyarrow.parquet as pq  # optional: the serving image has no pyarrow
    except ImportError:
        raise DataFileError(
            f"{path}: reading Parquet needs pyarrow, which this environment lacks; "
            "fix: `uv sync` (the pipeline group has it), or convert the file to CSV"
        ) from None
    _check_is_file(path)
    try:
        parquet = pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises its own ArrowInvalid and OSError subclasses
        raise DataFileError(f"{path}: not a readable Parquet file ({error})") from None
    _check_unique(parquet.schema_arrow.names, path)
    start = 0
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        frame = _nfc_header(batch.to_pandas())
        frame.index = pd.RangeIndex(start, start + len(frame))
        start += len(frame)
        yield frame


def _typed(frame: pd.DataFrame, path: Path, contract: Contract) -> pd.DataFrame:
    expected = [column.name for column in contract.columns]
    if not set(frame.columns) & set(expected):
        found = ", ".join(map(str, frame.columns[:3]))
        raise DataFileError(
            f"{path}: no column matches the data contract '{contract.name}' "
            f"(expected {', '.join(expected[:3])}, ...; found {found}); "
            "fix: supply a comma-separated file whose first row names the columns"
        )
    return apply_contract_types(frame, contract)
