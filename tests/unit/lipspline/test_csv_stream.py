"""A large CSV upload converted to Parquet block by block (``lipspline.data.csv_stream``) means
what the same file means as a small upload (``parse_csv``): the same numbers and labels, and
the same refusal (problem, row, column) for bad data; memory holds one block."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lipspline.data import DatasetError
from lipspline.data.csv_stream import csv_to_parquet
from lipspline.data.tabular import parse_csv

#: a block this small makes every file below span several blocks (and row groups)
BLOCK = 64


def converted(tmp_path: Path, text: str | bytes, target: str = "y") -> tuple[np.ndarray, np.ndarray]:
    data = text.encode() if isinstance(text, str) else text
    out = tmp_path / "out.parquet"
    rows = csv_to_parquet(io.BytesIO(data), out, target=target, block_bytes=BLOCK)
    table = pq.read_table(out)
    assert table.num_rows == rows
    features = [n for n in table.column_names if n != target]
    X = np.stack([table[n].to_numpy() for n in features], axis=1)
    return X, table[target].to_numpy(zero_copy_only=False)


def refusal(call) -> tuple[str, int | None, str | int | None]:
    with pytest.raises(DatasetError) as caught:
        call()
    return caught.value.problem, caught.value.row, caught.value.column


def many_rows(labels: list[str]) -> str:
    return "a, b ,y\n" + "".join(f"{i * 0.5}, {-i},{label}\n" for i, label in enumerate(labels))


@pytest.mark.parametrize(
    "text",
    [
        many_rows([str(i % 3) for i in range(40)]),  # int labels
        many_rows([str(i % 3) for i in range(39)] + ["2.5"]),  # a float in the last block: all floats
        many_rows([str(i % 3) for i in range(39)] + [" cat "]),  # text in the last block: all text, stripped
        "\ufeff\n\na,b,y\n1e3,2,x\n\n3, 4 ,\"z,1\"\n",  # BOM, blank lines, spaces, a quoted comma
    ],
)
def test_a_good_file_holds_the_numbers_and_labels_of_a_small_upload(tmp_path: Path, text: str) -> None:
    small = parse_csv(text.encode(), target="y")
    X, y = converted(tmp_path, text)
    np.testing.assert_array_equal(X, small.X)
    assert y.dtype.kind == small.y.dtype.kind or (y.dtype.kind == "O" and small.y.dtype.kind == "U")
    assert [str(v) for v in y] == [str(v) for v in small.y]


@pytest.mark.parametrize(
    "text",
    [
        many_rows(["1"] * 30) + "7,q,1\n",  # not a number, in a later block
        many_rows(["1"] * 30) + "7,8\n",  # too few fields
        many_rows(["1"] * 30) + "7,,1\n",  # an empty feature cell
        many_rows(["1"] * 30) + "7,8,  \n",  # an empty target
        "a,b,z\n1,2,3\n",  # no target column
        "a,b,y\n",  # a header and no rows
        "",  # nothing at all
        "a,,y\n1,2,3\n",  # a header cell without a name
    ],
)
def test_a_bad_file_is_refused_naming_what_a_small_upload_names(tmp_path: Path, text: str) -> None:
    small = refusal(lambda: parse_csv(text.encode(), target="y"))
    large = refusal(lambda: converted(tmp_path, text))
    assert large == small
    assert not (tmp_path / "out.parquet").exists()  # nothing left behind


def test_text_that_is_not_utf8_is_refused_naming_its_column(tmp_path: Path) -> None:
    problem, row, column = refusal(lambda: converted(tmp_path, b"a,b,y\n1,2,\xff\n"))
    assert (problem, row, column) == ("bad_encoding", 0, "y")
