"""Reading CSV files the way every stage expects them, with clear errors for unreadable files."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from .contract import Contract, nfc
from .errors import ProjectError, listed

_SNIFF_BYTES = 8192
_MAX_HEADER_BYTES = 1 << 20  # a header line longer than this is not a CSV header
_CHUNK_ROWS = 100_000
PARQUET_SUFFIXES = (".parquet", ".pq")
# Separators spreadsheets export instead of commas; read as CSV, the whole header is one column.
OTHER_SEPARATORS = (";", "\t", "|")
# pandas 2.3's default float parser kills the process (segfault) on some hex strings, such as
# the uuid4 prediction ids "315e8080742544e9...": digits, "e", then a long "exponent" (about 1
# id in 800; pandas issue 63167). It also reads about 1 written float in 6 back an ulp off.
# Python's own parser does neither, at about twice the parse time: every CSV is read with it.
FLOAT_PARSER: Final = "round_trip"


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


def _check_header(line: bytes, path: Path) -> list[str]:
    """The header's column names as written, once each, separated by commas."""
    header = line.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    _check_separator(header, path)
    names = next(csv.reader([header]), [])
    _check_unique(names, path)
    return names


def _check_is_text(path: Path) -> list[str]:
    """Refuse what is not UTF-8 comma-separated text; the header's column names as written."""
    _check_is_file(path)
    if path.stat().st_size == 0:
        raise DataFileError(f"{path}: file is empty (0 bytes); expected a CSV with a header row")
    with path.open("rb") as stream:
        head = stream.read(_SNIFF_BYTES)
        stream.seek(0)
        first_line = stream.readline(_MAX_HEADER_BYTES)
    if b"\x00" in head:
        raise DataFileError(
            f"{path}: not a CSV file (binary content); expected comma-separated text"
        )
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut at the sniff boundary is not an encoding problem.
        if error.start < len(head) - 4:
            raise DataFileError(
                f"{path}: not UTF-8 text ({error.reason}); save it as UTF-8 CSV"
            ) from None
    return _check_header(first_line, path)


def _whole(values: pd.Series) -> bool:
    """Whether every present value is a whole number an Int64 column holds (inf and 1e20 not)."""
    present = values.dropna()
    return bool(
        (np.isfinite(present) & (present.abs() < 2**63) & (present == present.round())).all()
    )


def truth_values(values: pd.Series) -> pd.Series:
    """Which values are True/False: no numbers, though pandas would make them 1/0.

    A whole column of them comes typed bool (a Parquet bool, a CSV chunk of True only); beside
    a blank or other values they are objects.
    """
    if values.dtype.kind == "b":
        return pd.Series(True, index=values.index)
    if values.dtype == object:
        return values.map(lambda value: isinstance(value, bool | np.bool_)).astype(bool)
    return pd.Series(False, index=values.index)


def _as_numbers_where_possible(values: pd.Series, *, whole: bool) -> pd.Series:
    """Parse numbers but keep unparseable values as they are, so a type check can point at them."""
    # True/False stay as they are, for the type check to name (row_checks refuses them too).
    parsed = pd.to_numeric(values.where(~truth_values(values)), errors="coerce")
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
    if values.dtype.kind == "f" and _whole(values):
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
        elif column.type == "int" and values.dtype.kind == "f" and _whole(values):
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
        raise DataFileError(
            f"{path}: not a readable CSV ({reason}); fix: give every row the header's number of "
            "fields (quote a value that holds a comma)"
        ) from None


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
        frame = _nfc_header(
            pd.read_csv(path, encoding="utf-8", low_memory=False, float_precision=FLOAT_PARSER)
        )
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
        pd.read_csv(
            path,
            encoding="utf-8",
            low_memory=False,
            chunksize=_CHUNK_ROWS,
            float_precision=FLOAT_PARSER,
        ) as chunks,
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
    categories = {column.name for column in contract.features if not column.is_numeric}
    # Keyed by the names as written: the contract's are in NFC, the file's may not be.
    text = {name: str for name in _check_is_text(path) if nfc(name) in categories}
    with (
        _csv_errors_named(path),
        pd.read_csv(
            path,
            encoding="utf-8",
            dtype=text,
            low_memory=False,
            chunksize=chunk_rows,
            float_precision=FLOAT_PARSER,
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
