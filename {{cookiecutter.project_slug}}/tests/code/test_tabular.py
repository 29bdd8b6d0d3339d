"""Unreadable files fail with a message naming the file and the problem."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from {{ cookiecutter.package_name }} import (
    tabular,
)
from {{ cookiecutter.package_name }}.contract import (
    Column,
    Contract,
)
from {{ cookiecutter.package_name }}.errors import (
    ProjectError,
)
from {{ cookiecutter.package_name }}.tabular import (
    DataFileError,
    read_table,
    read_table_chunks,
    read_table_sample,
    require_features,
)

CONTRACT = Contract(
    name="toy",
    target=Column(name="label", type="category", allowed=["a", "b"]),
    features=[Column(name="size", type="float"), Column(name="count", type="int", nullable=True)],
)


def write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "data.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a CSV file (binary content)"),
        ("size,label\n1.5,caf\xe9\n".encode("latin-1"), "not UTF-8 text"),
        ('{"size": [1, 2], "label": ["a", "b"]}\n', "no column matches the data contract 'toy'"),
        ('size,label\n"1.5,a\n', "not a readable CSV ("),
    ],
    ids=["empty", "binary", "latin-1", "json", "broken-quote"],
)
def test_unreadable_files_are_named(tmp_path: Path, content: str | bytes, message: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(DataFileError, match=re.escape(message)) as raised:
        read_table(path, CONTRACT)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    ("separator", "content"),
    [
        (";", "size;label\n1.5;a\n"),
        (";", "size;label\n1,5;a\n2,25;b\n"),  # decimal commas: pandas fails on the rows
        ("\t", "size\tlabel\n1.5\ta\n"),
        ("|", "size|label\n1.5|a, with a comma\n"),
    ],
    ids=["semicolon", "semicolon-decimal-comma", "tab", "pipe"],
)
def test_a_file_separated_otherwise_than_by_commas_is_named(
    tmp_path: Path, separator: str, content: str
) -> None:
    path = write(tmp_path, content)
    named = rf"separated by {re.escape(repr(separator))}, not commas; fix: save it as comma"
    with pytest.raises(DataFileError, match=named):
        read_table(path)  # as `profile` reads it, before any contract
    with pytest.raises(DataFileError, match=named):
        next(tabular.read_table_chunks(path, CONTRACT, 10))  # as `score` reads it
    with pytest.raises(DataFileError, match=named):
        read_table_sample(path, CONTRACT, 10, seed=0)  # as `monitor --data` reads it


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="file not found"):
        read_table(tmp_path / "absent.csv", CONTRACT)


def test_numbers_are_parsed_but_bad_values_kept_for_the_gate(tmp_path: Path) -> None:
    path = write(tmp_path, "size,count,label\n1.5,3,a\nabc,x,b\n2,,a\n")
    frame = read_table(path, CONTRACT)
    assert frame["size"].tolist() == [1.5, "abc", 2.0]
    assert frame["count"].tolist()[:2] == [3, "x"]
    assert isinstance(frame["count"].tolist()[0], int)


def test_whole_number_column_with_nulls_stays_integer(tmp_path: Path) -> None:
    path = write(tmp_path, "size,count,label\n1.5,3,a\n2.5,,b\n")
    assert str(read_table(path, CONTRACT)["count"].dtype) == "Int64"


def test_categories_are_read_as_text(tmp_path: Path) -> None:
    contract = CONTRACT.model_copy(
        update={"target": Column(name="label", type="category", allowed=["1", "2"])}
    )
    path = write(tmp_path, "size,count,label\n1.5,3,1\n2.5,4,2\n")
    assert read_table(path, contract)["label"].tolist() == ["1", "2"]


def test_codes_read_as_floats_beside_a_blank_are_the_same_categories(tmp_path: Path) -> None:
    contract = CONTRACT.model_copy(
        update={
            "features": [
                *CONTRACT.features,
                Column(name="grade", type="category", allowed=["1", "3"], nullable=True),
            ]
        }
    )
    path = write(tmp_path, "size,count,label,grade\n1.5,3,a,3\n2.5,4,b,\n3.5,5,a,1.0\n")
    grades = read_table(path, contract)["grade"]
    assert grades.tolist()[::2] == ["3", "1"]
    assert grades.isna().tolist() == [False, True, False]


def many_rows(tmp_path: Path, rows: int) -> Path:
    lines = ["size,count,label"]
    for index in range(rows):
        count = "" if index % 7 == 0 else str(index)  # some nulls in a whole-number column
        lines.append(f"{index / 10},{count},{'ab'[index % 2]}")
    return write(tmp_path, "\n".join(lines) + "\n")


def test_a_sample_of_a_file_that_fits_is_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tabular, "_CHUNK_ROWS", 40)  # several chunks, still under max_rows
    path = many_rows(tmp_path, 150)
    sample, rows = read_table_sample(path, CONTRACT, 200, seed=0)
    assert rows == 150
    pd.testing.assert_frame_equal(sample, read_table(path, CONTRACT))


def test_a_large_file_is_sampled_across_chunks_bounded_and_seeded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tabular, "_CHUNK_ROWS", 100)
    path = many_rows(tmp_path, 1000)
    sample, rows = read_table_sample(path, CONTRACT, 50, seed=3)
    assert (rows, len(sample)) == (1000, 50)
    whole = read_table(path, CONTRACT)
    pd.testing.assert_frame_equal(sample, whole.loc[sample.index])  # real rows, typed alike
    assert sample.index.is_monotonic_increasing
    assert sample.index.max() >= 500  # drawn from the whole file, not its first chunks
    again, _ = read_table_sample(path, CONTRACT, 50, seed=3)
    pd.testing.assert_frame_equal(sample, again)
    other, _ = read_table_sample(path, CONTRACT, 50, seed=4)
    assert not other.index.equals(sample.index)


def test_a_header_only_file_samples_to_no_rows(tmp_path: Path) -> None:
    sample, rows = read_table_sample(write(tmp_path, "size,count,label\n"), CONTRACT, 10, seed=0)
    assert rows == 0
    assert sample.empty
    assert list(sample.columns) == ["size", "count", "label"]


def test_a_name_typed_in_either_unicode_form_is_the_same_column(tmp_path: Path) -> None:
    """An "é" is one character or "e" plus a combining accent, depending on the editor: the same
    column, not one missing and one extra."""
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    contract = Contract(
        name="toy",
        target=Column(name="label", type="category", allowed=["a", "b"]),
        features=[Column(name=decomposed, type="float")],
        slices=[{"column": decomposed, "bands": [2.0]}],
    )
    assert contract.feature_names == [composed]
    assert contract.slices[0].column == composed
    path = write(tmp_path, f"{decomposed},label\n1.5,a\n2.5,b\n")
    for frame in (
        read_table(path, contract),
        read_table_sample(path, contract, 1, 0)[0],
        next(read_table_chunks(path, contract, 10)),
    ):
        assert list(frame.columns) == [composed, "label"]
        require_features(frame.columns, contract, path)


def test_a_repeated_column_name_is_refused(tmp_path: Path) -> None:
    """pandas would keep the first copy under the name and rename the other: which one the
    user meant cannot be known, so the file is refused, in every reader."""
    path = write(tmp_path, "\ufeffsize,count,size,label\r\n1.5,1,9.0,a\r\n")
    for read in (
        lambda: read_table(path, CONTRACT),
        lambda: read_table_sample(path, CONTRACT, 5, 0),
        lambda: next(read_table_chunks(path, CONTRACT, 10)),
    ):
        with pytest.raises(
            DataFileError, match=r"data\.csv: the header repeats column 'size'; fix"
        ):
            read()
    table = pa.table([[1.5], [9.0], ["a"]], names=["size", "size", "label"])
    parquet = tmp_path / "data.parquet"
    pq.write_table(table, parquet)
    with pytest.raises(DataFileError, match="the header repeats column 'size'"):
        next(read_table_chunks(parquet, CONTRACT, 10))


def test_a_folder_and_a_near_miss_column_are_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="is a folder, not a file"):
        read_table(tmp_path)
    with pytest.raises(
        ProjectError, match=r"missing contract columns size \(the file has ' Size '"
    ):
        require_features(pd.Index([" Size ", "count"]), CONTRACT, "data.csv")


def test_an_id_that_looks_like_a_huge_exponent_does_not_crash_the_reader(tmp_path: Path) -> None:
    """pandas 2.3's default float parser kills the process on "315e8080742544e9...": digits,
    an "e", a long exponent. About 1 uuid4 prediction id in 800 looks like that."""
    ids = [
        "315e8080742544e9b891aef5ebe0572c",  # pragma: allowlist secret
        "53e828869411423a90b417eb7111f1d1",  # pragma: allowlist secret
    ]
    path = write(tmp_path, f"prediction_id,row\n{ids[0]},0\n{ids[1]},1\n")
    program = (
        "import sys; from pathlib import Path; "
        "from {{ cookiecutter.package_name }}.tabular import read_table; "
        "print(read_table(Path(sys.argv[1]))['prediction_id'].tolist())"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-800:]
    assert ids[0] in done.stdout


def test_a_category_named_in_another_unicode_form_is_still_read_as_text(tmp_path: Path) -> None:
    """The reader keeps codes as text ("007") by name: the file's name, not the contract's."""
    contract = Contract(
        name="toy",
        target=Column(name="label", type="category", allowed=["a", "b"]),
        features=[Column(name="cat\u00e9gorie", type="category", allowed=["007", "010"])],
    )
    path = write(tmp_path, "cate\u0301gorie,label\n007,a\n010,b\n")
    chunk = next(read_table_chunks(path, contract, 10))
    assert chunk["cat\u00e9gorie"].tolist() == ["007", "010"]


def test_the_whole_header_is_checked_and_its_encoding_first(tmp_path: Path) -> None:
    names = [f"feature_{index:04d}" for index in range(900)]
    path = write(tmp_path, ",".join([*names, "feature_0001"]) + "\n" + ",".join("1" * 901) + "\n")
    with pytest.raises(DataFileError, match="the header repeats column 'feature_0001'"):
        read_table(path)
    path.write_bytes("prix_caf\u00e9,prix_caf\u00e8\n1,2\n".encode("latin-1"))
    with pytest.raises(DataFileError, match="not UTF-8"):
        read_table(path)


def test_true_false_and_huge_values_are_kept_for_the_checks_not_converted(
    tmp_path: Path,
) -> None:
    """True is not 1 and inf is no Int64: both stay as read, for the gate to name."""
    path = write(tmp_path, "size,count,label\nTrue,inf,a\n,1e20,b\nFalse,,a\n")
    frame = read_table(path, CONTRACT)  # True/False beside a blank: read as bool objects
    assert frame["size"].tolist()[0] is True
    assert frame["size"].tolist()[2] is False
    assert frame["count"].tolist()[:2] == [float("inf"), 1e20]
