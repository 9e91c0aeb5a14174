"""A large ``.npz`` upload converted to Parquet a block of rows at a time (``lipspline.data.npz_stream``)
means what the same file means as a small upload (``parse_npz``): the same numbers, labels and
feature names, and the same refusal (problem, column) for a bad file; nothing is left behind."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lipspline.data import DatasetError
from lipspline.data.arrays import parse_npz
from lipspline.data.npz_stream import npz_to_parquet

LIMIT = 1 << 20
#: a few rows per block: every file below spans several blocks (and row groups)
BLOCK = 100


def npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays) if len(arrays) > 1 else np.savez(buffer, **arrays)
    return buffer.getvalue()


def converted(tmp_path: Path, data: bytes) -> tuple[list[str], np.ndarray, np.ndarray]:
    out = tmp_path / "out.parquet"
    rows = npz_to_parquet(io.BytesIO(data), out, max_bytes=LIMIT, block_bytes=BLOCK)
    table = pq.read_table(out)
    assert table.num_rows == rows
    names = [n for n in table.column_names if n != "y"]
    return names, np.stack([table[n].to_numpy() for n in names], axis=1), table["y"].to_numpy(zero_copy_only=False)


rng = np.random.default_rng(0)
GOOD = {
    "float32 X, int labels": {"X": rng.normal(size=(50, 3)).astype(np.float32), "y": rng.integers(0, 3, 50)},
    "int X, float targets": {"X": rng.integers(-5, 5, (40, 2)), "y": rng.normal(size=40)},
    "images flattened, text labels": {"X": rng.random((30, 2, 2, 2)), "y": np.array(["cat", "dog"] * 15)},
    "Fortran order": {"X": np.asfortranarray(rng.normal(size=(30, 4))), "y": rng.integers(0, 2, 30)},
    "Fortran order images": {"X": np.asfortranarray(rng.random((30, 2, 3, 2))), "y": rng.integers(0, 2, 30)},
}


@pytest.mark.parametrize("arrays", GOOD.values(), ids=GOOD.keys())
def test_a_good_file_holds_the_numbers_and_labels_of_a_small_upload(tmp_path: Path, arrays: dict) -> None:
    data = npz(**arrays)
    small = parse_npz(data, max_bytes=LIMIT)
    names, X, y = converted(tmp_path, data)
    assert pq.ParquetFile(tmp_path / "out.parquet").num_row_groups > 1  # read in blocks, either order
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]  # no spooled columns left behind
    assert names == small.feature_names
    np.testing.assert_array_equal(X, small.X)
    assert [str(v) for v in y] == [str(v) for v in small.y]


BAD = {
    "no y": npz(X=np.zeros((4, 2))),
    "X not numeric": npz(X=np.array([["a", "b"]] * 4), y=np.zeros(4)),
    "X one-dimensional": npz(X=np.zeros(4), y=np.zeros(4)),
    "y two-dimensional": npz(X=np.zeros((4, 2)), y=np.zeros((4, 1))),
    "lengths differ": npz(X=np.zeros((4, 2)), y=np.zeros(3)),
    "no rows": npz(X=np.zeros((0, 2)), y=np.zeros(0)),
    "over the limit": npz(X=np.zeros((LIMIT // 8 + 1, 1)), y=np.zeros(LIMIT // 8 + 1)),
    "not a zip": b"this is not a zip archive",
}


@pytest.mark.parametrize("data", BAD.values(), ids=BAD.keys())
def test_a_bad_file_is_refused_as_a_small_upload_refuses_it(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(DatasetError) as small:
        parse_npz(data, max_bytes=LIMIT)
    with pytest.raises(DatasetError) as large:
        converted(tmp_path, data)
    assert (large.value.problem, large.value.column) == (small.value.problem, small.value.column)
    assert not (tmp_path / "out.parquet").exists()
