"""Tests for lipspline.data: every bad upload must fail with a precise, located DatasetError."""

from __future__ import annotations

import io
import json
import math
import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lipspline.data import (
    Dataset,
    DatasetError,
    Scaling,
    fit_scaling,
    from_arrays,
    infer_task,
    make_circle,
    parse_csv,
    parse_npz,
    parse_parquet,
    parse_upload,
    train_validation_split,
)

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

_UNPICKLED: list[str] = []


def _mark_unpickled() -> str:
    """Called only if something unpickles an _Evil instance; the npz test asserts it never is."""
    _UNPICKLED.append("unpickled")
    return "pwned"


class _Evil:
    def __reduce__(self):
        return (_mark_unpickled, ())


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _csv_bytes(X: np.ndarray, y: np.ndarray, names: list[str], target: str = "label") -> bytes:
    lines = [",".join([*names, target])]
    for row, label in zip(X, y, strict=True):
        lines.append(",".join([*(repr(float(v)) for v in row), str(label)]))
    return ("\n".join(lines) + "\n").encode("utf-8")


def _raises(problem: str, fn, *args, **kwargs) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        fn(*args, **kwargs)
    assert info.value.problem == problem, str(info.value)
    return info.value


# ---------------------------------------------------------------------------------------------
# from_arrays validation
# ---------------------------------------------------------------------------------------------


def test_from_arrays_basic_regression() -> None:
    ds = from_arrays([[0.0, 1.0], [2.0, 3.0], [4.0, 5.5]], [0.1, 0.2, 0.35])
    assert ds.task == "regression"
    assert ds.X.dtype == np.float64 and ds.X.shape == (3, 2)
    assert ds.y.dtype == np.float64
    assert ds.classes is None
    assert ds.feature_names == ["x1", "x2"]
    assert (ds.n_samples, ds.n_features) == (3, 2)
    np.testing.assert_array_equal(ds.encoded_targets(), [0.1, 0.2, 0.35])


def test_from_arrays_arrays_are_read_only_copies() -> None:
    X = np.ones((3, 2))
    ds = from_arrays(X, [0, 1, 0])
    X[0, 0] = 99.0
    assert ds.X[0, 0] == 1.0
    with pytest.raises(ValueError):
        ds.X[0, 0] = 5.0


def test_from_arrays_nan_names_row_and_column() -> None:
    err = _raises("nan", from_arrays, [[1.0, 2.0], [3.0, float("nan")]], [0, 1], feature_names=["a", "b"])
    assert err.row == 1 and err.column == "b"
    assert "row 1" in str(err) and "'b'" in str(err)


def test_from_arrays_inf_names_row_and_column() -> None:
    err = _raises("inf", from_arrays, [[1.0, 2.0], [3.0, 4.0], [-math.inf, 0.0]], [0, 1, 0])
    assert err.row == 2 and err.column == "x1"
    assert "row 2" in str(err)


def test_from_arrays_ragged_row() -> None:
    err = _raises("ragged_row", from_arrays, [[1.0, 2.0], [3.0, 4.0], [5.0]], [0, 1, 0])
    assert err.row == 2
    assert "Row 2" in str(err)


def test_from_arrays_non_numeric_cell() -> None:
    err = _raises("non_numeric", from_arrays, [[1.0, 2.0], [3.0, "4.0"]], [0, 1])
    assert (err.row, err.column) == (1, "x2")
    assert "Row 1, column 'x2'" in str(err)
    err = _raises("non_numeric", from_arrays, [[1.0, "a"]], [0], feature_names=["p", "q"])
    assert (err.row, err.column) == (0, "q")


def test_from_arrays_none_cell_is_non_numeric() -> None:
    err = _raises("non_numeric", from_arrays, [[1.0, None], [3.0, 4.0]], [0, 1])
    assert (err.row, err.column) == (0, "x2")


def test_from_arrays_empty_and_shape_errors() -> None:
    _raises("empty", from_arrays, [], [])
    _raises("empty", from_arrays, np.zeros((0, 3)), np.zeros(0))
    _raises("no_features", from_arrays, np.zeros((3, 0)), [0, 1, 0])
    _raises("bad_shape", from_arrays, [1.0, 2.0, 3.0], [0, 1, 0])
    _raises("bad_shape", from_arrays, [[1.0], [2.0]], [[0], [1]])


def test_from_arrays_length_mismatch() -> None:
    _raises("length_mismatch", from_arrays, [[1.0], [2.0], [3.0]], [0, 1])


def test_from_arrays_single_class() -> None:
    err = _raises("single_class", from_arrays, [[1.0], [2.0], [3.0]], ["a", "a", "a"])
    assert "'a'" in str(err)
    _raises("single_class", from_arrays, [[1.0], [2.0]], [1, 1], task="classification")


def test_from_arrays_nan_in_regression_target() -> None:
    err = _raises("nan", from_arrays, [[1.0], [2.0], [3.0]], [0.5, float("nan"), 1.5], task="regression")
    assert err.row == 1 and err.column == "y"


def test_from_arrays_text_targets_for_regression_rejected() -> None:
    _raises("non_numeric", from_arrays, [[1.0], [2.0]], ["a", "b"], task="regression")


def test_from_arrays_bad_task_and_feature_names() -> None:
    _raises("bad_task", from_arrays, [[1.0], [2.0]], [0, 1], task="clustering")
    _raises("duplicate_column", from_arrays, [[1.0, 2.0], [2.0, 3.0]], [0, 1], feature_names=["a", "a"])
    _raises("bad_shape", from_arrays, [[1.0, 2.0], [2.0, 3.0]], [0, 1], feature_names=["a"])


def test_string_labels_kept_as_classes() -> None:
    ds = from_arrays([[0.0], [1.0], [2.0], [3.0]], ["dog", "cat", "dog", "bird"])
    assert ds.task == "classification"
    assert ds.classes == ["bird", "cat", "dog"]
    assert all(isinstance(c, str) for c in ds.classes)
    assert list(ds.y) == ["dog", "cat", "dog", "bird"]
    np.testing.assert_array_equal(ds.encoded_targets(), [2, 1, 2, 0])
    assert ds.encoded_targets().dtype == np.int64


def test_integer_and_bool_labels_are_python_ints() -> None:
    ds = from_arrays([[0.0], [1.0], [2.0]], np.array([3, 1, 3], dtype=np.int32))
    assert ds.classes == [1, 3] and all(type(c) is int for c in ds.classes)
    np.testing.assert_array_equal(ds.encoded_targets(), [1, 0, 1])
    ds_bool = from_arrays([[0.0], [1.0]], [True, False])
    assert ds_bool.task == "classification" and ds_bool.classes == [0, 1]


# ---------------------------------------------------------------------------------------------
# task inference
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("y", "expected"),
    [
        (np.array([0, 1, 1, 0]), "classification"),
        (np.array([0.0, 1.0, 2.0]), "classification"),
        (np.array([True, False]), "classification"),
        (np.array(["a", "b"]), "classification"),
        (np.arange(21), "regression"),
        (np.arange(20), "classification"),
        (np.array([0.5, 1.0]), "regression"),
        (np.array([1.0, np.nan]), "regression"),
    ],
)
def test_infer_task(y: np.ndarray, expected: str) -> None:
    assert infer_task(y) == expected


def test_explicit_task_overrides_inference() -> None:
    ds = from_arrays([[0.0], [1.0], [2.0]], [0, 1, 2], task="regression")
    assert ds.task == "regression" and ds.y.dtype == np.float64
    ds2 = from_arrays([[0.0], [1.0], [2.0]], [0.5, 1.5, 0.5], task="classification")
    assert ds2.classes == [0.5, 1.5]


# ---------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------


def test_csv_basic_with_bom_and_string_labels() -> None:
    data = "\ufeffa, b ,species\n1,2,setosa\n3,4.5,virginica\n\n".encode()
    ds = parse_csv(data, target="species", name="iris")
    assert ds.feature_names == ["a", "b"]
    assert ds.classes == ["setosa", "virginica"]
    np.testing.assert_array_equal(ds.X, [[1.0, 2.0], [3.0, 4.5]])
    assert ds.name == "iris"


def test_csv_target_column_can_be_anywhere() -> None:
    ds = parse_csv(b"t,a,b\n0.5,1,2\n1.5,3,4\n2.25,5,6\n", target="t")
    assert ds.task == "regression"
    assert ds.feature_names == ["a", "b"]
    np.testing.assert_array_equal(ds.y, [0.5, 1.5, 2.25])


def test_csv_nan_cell_names_row_and_column() -> None:
    err = _raises("nan", parse_csv, b"a,b,t\n1,2,0\n3,nan,1\n", target="t")
    assert (err.row, err.column) == (1, "b")


def test_csv_inf_cell() -> None:
    err = _raises("inf", parse_csv, b"a,b,t\n1,2,0\ninf,4,1\n", target="t")
    assert (err.row, err.column) == (1, "a")


def test_csv_ragged_row() -> None:
    err = _raises("ragged_row", parse_csv, b"a,b,t\n1,2,0\n3,1\n5,6,1\n", target="t")
    assert err.row == 1
    assert "Row 1" in str(err) and "line 3" in str(err)


def test_csv_text_in_numeric_column() -> None:
    err = _raises("non_numeric", parse_csv, b"a,b,t\n1,2,0\n3,hello,1\n", target="t")
    assert (err.row, err.column) == (1, "b")
    assert "'hello'" in str(err) and "'b'" in str(err)


def test_csv_empty_cell() -> None:
    err = _raises("missing_value", parse_csv, b"a,b,t\n1,,0\n3,4,1\n", target="t")
    assert (err.row, err.column) == (0, "b")
    err = _raises("missing_value", parse_csv, b"a,b,t\n1,2,\n3,4,1\n", target="t")
    assert (err.row, err.column) == (0, "t")


def test_csv_empty_file_and_header_only() -> None:
    _raises("empty", parse_csv, b"", target="t")
    _raises("empty", parse_csv, b"\n\n  \n", target="t")
    _raises("empty", parse_csv, b"a,b,t\n", target="t")


def test_csv_single_class() -> None:
    err = _raises("single_class", parse_csv, b"a,t\n1,yes\n2,yes\n", target="t")
    assert err.column == "t"


def test_csv_missing_and_duplicate_target() -> None:
    err = _raises("missing_target", parse_csv, b"a,b\n1,2\n", target="label")
    assert err.column == "label" and "'label'" in str(err)
    err = _raises("duplicate_column", parse_csv, b"a,t,t\n1,0,0\n2,1,1\n", target="t")
    assert err.column == "t"
    err = _raises("duplicate_column", parse_csv, b"a,a,t\n1,0,0\n2,1,1\n", target="t")
    assert err.column == "a"


def test_csv_only_target_column() -> None:
    _raises("no_features", parse_csv, b"t\n0\n1\n", target="t")


def test_csv_bad_encoding_latin1() -> None:
    data = "a,b,t\n1,2,caf\u00e9\n3,4,\u00ff\n".encode("latin-1")
    assert b"\xff" in data
    err = _raises("bad_encoding", parse_csv, data, target="t")
    assert "UTF-8" in str(err)


def test_csv_binary_junk() -> None:
    junk = bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8))
    _raises("bad_encoding", parse_csv, junk, target="t")
    # Valid UTF-8 but binary (NUL bytes) is rejected too.
    _raises("bad_encoding", parse_csv, b"a,t\x00\x00\n1,0\n", target="t")


def test_csv_regression_with_text_target() -> None:
    err = _raises("non_numeric", parse_csv, b"a,t\n1,0.5\n2,oops\n", target="t", task="regression")
    assert (err.row, err.column) == (1, "t")


def test_csv_too_large() -> None:
    _raises("too_large", parse_csv, b"a,t\n1,0\n2,1\n", target="t", max_bytes=5)


# ---------------------------------------------------------------------------------------------
# NPZ
# ---------------------------------------------------------------------------------------------


def test_npz_basic_and_image_flattening() -> None:
    X = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    ds = parse_npz(_npz_bytes(X=X, y=np.array([0, 1])))
    assert ds.X.shape == (2, 12) and ds.X.dtype == np.float64
    np.testing.assert_array_equal(ds.X[1], X[1].ravel())
    assert ds.task == "classification"


def test_npz_object_array_rejected_without_unpickling() -> None:
    _UNPICKLED.clear()
    X = np.empty((2, 1), dtype=object)
    X[0, 0] = _Evil()
    X[1, 0] = 1.0
    data = _npz_bytes(X=X, y=np.array([0, 1]))
    err = _raises("bad_npz", parse_npz, data)
    assert err.column == "X"
    assert _UNPICKLED == []
    # Object labels too.
    data = _npz_bytes(X=np.zeros((2, 1)), y=np.array([_Evil(), 1], dtype=object))
    _raises("bad_npz", parse_npz, data)
    assert _UNPICKLED == []


def test_npz_missing_y() -> None:
    err = _raises("bad_npz", parse_npz, _npz_bytes(X=np.zeros((2, 2))))
    assert err.column == "y" and "'y'" in str(err)


def test_npz_not_a_zip() -> None:
    _raises("bad_npz", parse_npz, b"this is not a zip file at all")
    # A bare .npy file is not an .npz archive either.
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    _raises("bad_npz", parse_npz, buf.getvalue())


def _npy_with_header(shape: tuple[int, ...], payload: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buf.getvalue() + payload


def test_npz_huge_declared_shape() -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("X.npy", _npy_with_header((10**6, 10**6), b"\x00" * 16))
        zf.writestr("y.npy", _npy_with_header((10**6,), b"\x00" * 16))
    err = _raises("too_large", parse_npz, archive.getvalue())
    assert err.column == "X"


def test_npz_truncated_payload() -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("X.npy", _npy_with_header((100, 2), b"\x00" * 16))
        zf.writestr("y.npy", _npy_with_header((100,), b"\x00" * 800))
    _raises("bad_npz", parse_npz, archive.getvalue())


def test_npz_zip_bomb_member_rejected_from_declared_size() -> None:
    # Small valid X/y plus a highly compressible 8 MB member: only the zip directory's
    # declared size reveals it, and it must be rejected before anything is inflated.
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in {"X": np.zeros((2, 1)), "y": np.array([0, 1])}.items():
            buf = io.BytesIO()
            np.save(buf, arr)
            zf.writestr(f"{key}.npy", buf.getvalue())
        zf.writestr("padding.bin", b"\x00" * (8 * 2**20))
    data = archive.getvalue()
    assert len(data) < 100_000
    _raises("too_large", parse_npz, data, max_bytes=2**20)
    # The same archive is fine under a generous limit.
    assert parse_npz(data, max_bytes=2**24).n_samples == 2


def test_npz_compressed_large_array_rejected() -> None:
    data = io.BytesIO()
    np.savez_compressed(data, X=np.zeros((1000, 1000)), y=np.zeros(1000))
    _raises("too_large", parse_npz, data.getvalue(), max_bytes=10**6)


def test_npz_shape_errors() -> None:
    _raises("bad_shape", parse_npz, _npz_bytes(X=np.zeros(3), y=np.array([0, 1, 0])))
    _raises("length_mismatch", parse_npz, _npz_bytes(X=np.zeros((3, 2)), y=np.array([0, 1])))
    _raises("non_numeric", parse_npz, _npz_bytes(X=np.array([["a"], ["b"]]), y=np.array([0, 1])))
    err = _raises("nan", parse_npz, _npz_bytes(X=np.array([[1.0], [np.nan]]), y=np.array([0, 1])))
    assert (err.row, err.column) == (1, "x1")


def test_npz_string_labels() -> None:
    ds = parse_npz(_npz_bytes(X=np.zeros((3, 1)), y=np.array(["b", "a", "b"])))
    assert ds.classes == ["a", "b"]


# ---------------------------------------------------------------------------------------------
# Parquet
# ---------------------------------------------------------------------------------------------


def test_parquet_basic_string_labels() -> None:
    table = pa.table({"a": [1.0, 2.0, 3.0], "label": ["x", "y", "x"], "b": [1, 2, 3]})
    ds = parse_parquet(_parquet_bytes(table), target="label")
    assert ds.feature_names == ["a", "b"]
    assert ds.classes == ["x", "y"]
    np.testing.assert_array_equal(ds.X, [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])


def test_parquet_errors() -> None:
    table = pa.table({"a": [1.0, None], "t": [0, 1]})
    err = _raises("missing_value", parse_parquet, _parquet_bytes(table), target="t")
    assert (err.row, err.column) == (1, "a")
    table = pa.table({"a": ["p", "q"], "t": [0, 1]})
    err = _raises("non_numeric", parse_parquet, _parquet_bytes(table), target="t")
    assert err.column == "a"
    err = _raises("missing_target", parse_parquet, _parquet_bytes(pa.table({"a": [1.0]})), target="t")
    assert err.column == "t"
    _raises("bad_parquet", parse_parquet, b"PAR1 definitely not parquet", target="t")
    table = pa.table({"a": [1.0, float("nan")], "t": [0, 1]})
    err = _raises("nan", parse_parquet, _parquet_bytes(table), target="t")
    assert (err.row, err.column) == (1, "a")
    _raises(
        "too_large",
        parse_parquet,
        _parquet_bytes(pa.table({"a": [1.0] * 1000, "t": [0, 1] * 500})),
        target="t",
        max_bytes=2000,
    )


# ---------------------------------------------------------------------------------------------
# round trips and hashing
# ---------------------------------------------------------------------------------------------


def _reference_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(25, 3))
    X[0, 0] = -0.0
    y = (X[:, 0] > 0).astype(np.int64)
    return X, y


def test_round_trips_share_sha256_classification() -> None:
    X, y = _reference_data()
    names = ["f1", "f2", "f3"]
    ds_arr = from_arrays(X.tolist(), y.tolist(), feature_names=names)
    ds_csv = parse_csv(_csv_bytes(X, y, names), target="label")
    ds_npz = parse_npz(_npz_bytes(X=X, y=y.astype(np.int32)))
    table = pa.table({**{n: X[:, j] for j, n in enumerate(names)}, "label": y})
    ds_pq = parse_parquet(_parquet_bytes(table), target="label")
    hashes = {d.sha256 for d in (ds_arr, ds_csv, ds_npz, ds_pq)}
    assert len(hashes) == 1
    assert ds_arr.content_sha256() == ds_arr.sha256
    for d in (ds_csv, ds_npz, ds_pq):
        np.testing.assert_array_equal(d.X, ds_arr.X)
        assert d.classes == [0, 1]


def test_round_trips_share_sha256_regression_and_strings() -> None:
    X, _ = _reference_data()
    y = X @ np.array([0.3, -1.2, 2.0])
    ds_arr = from_arrays(X, y)
    ds_csv = parse_csv(_csv_bytes(X, np.array([repr(float(v)) for v in y]), ["a", "b", "c"]), target="label")
    assert ds_arr.task == ds_csv.task == "regression"
    assert ds_arr.sha256 == ds_csv.sha256

    labels = np.array(["no", "yes"])[(X[:, 1] > 0).astype(int)]
    s_arr = from_arrays(X, labels.tolist())
    s_npz = parse_npz(_npz_bytes(X=X, y=labels))
    s_csv = parse_csv(_csv_bytes(X, labels, ["a", "b", "c"]), target="label")
    assert s_arr.sha256 == s_npz.sha256 == s_csv.sha256


def test_sha256_changes_with_content() -> None:
    X, y = _reference_data()
    base = from_arrays(X, y)
    X2 = X.copy()
    X2[3, 1] += 1e-9
    assert from_arrays(X2, y).sha256 != base.sha256
    y2 = y.copy()
    y2[0] = 1 - y2[0]
    assert from_arrays(X, y2).sha256 != base.sha256
    assert from_arrays(X, y.astype(float), task="regression").sha256 != base.sha256
    # Names do not change the data's identity.
    assert from_arrays(X, y, feature_names=["p", "q", "r"], name="other").sha256 == base.sha256


def test_float_whole_labels_equal_int_labels() -> None:
    a = from_arrays([[0.0], [1.0]], [0.0, 1.0])
    b = from_arrays([[0.0], [1.0]], [0, 1])
    assert a.classes == b.classes == [0, 1]
    assert a.sha256 == b.sha256


# ---------------------------------------------------------------------------------------------
# parse_upload
# ---------------------------------------------------------------------------------------------


def test_parse_upload_dispatch() -> None:
    csv_ds = parse_upload("dir/My Data.CSV", b"a,t\n1,0\n2,1\n", target="t")
    assert csv_ds.name == "My Data" and csv_ds.n_samples == 2
    npz_ds = parse_upload("..\\..\\evil.npz", _npz_bytes(X=np.zeros((2, 1)), y=np.array([0, 1])), target=None)
    assert npz_ds.name == "evil"
    pq_ds = parse_upload("t.pq", _parquet_bytes(pa.table({"a": [1.0, 2.0], "t": [0, 1]})), target="t")
    assert pq_ds.feature_names == ["a"]
    err = _raises("missing_target", parse_upload, "x.csv", b"a,t\n1,0\n", target=None)
    assert err.column == "target"
    _raises("missing_target", parse_upload, "x.parquet", b"", target="")
    _raises("unsupported_format", parse_upload, "x.xlsx", b"", target="t")
    _raises("unsupported_format", parse_upload, "noext", b"", target="t")


# ---------------------------------------------------------------------------------------------
# scaling
# ---------------------------------------------------------------------------------------------


def test_fit_scaling_regression_and_constant_column() -> None:
    X = np.array([[1.0, 5.0, 0.1], [3.0, 5.0, 0.1], [5.0, 5.0, 0.1]])
    ds = from_arrays(X, [1.0, 2.0, 4.5], task="regression")
    s = fit_scaling(ds)
    np.testing.assert_allclose(s.input_mean, [3.0, 5.0, 0.1])
    np.testing.assert_allclose(s.input_scale, [np.std([1.0, 3.0, 5.0]), 1.0, 1.0])
    Z = s.transform_inputs(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-12)
    assert np.all(np.isfinite(Z))
    assert s.target_mean == pytest.approx(2.5)
    assert s.target_scale == pytest.approx(np.std([1.0, 2.0, 4.5]))
    np.testing.assert_allclose(s.inverse_targets(s.transform_targets(ds.y)), ds.y)


def test_fit_scaling_classification_keeps_unit_target() -> None:
    s = fit_scaling(make_circle(200))
    assert (s.target_mean, s.target_scale) == (0.0, 1.0)
    assert s.n_features == 2 and np.all(s.input_scale > 0)


def test_scaling_json_round_trip() -> None:
    s = Scaling(
        input_mean=np.array([0.1, -2.0 / 3.0]), input_scale=np.array([1.0, 1e-7]), target_mean=3.3, target_scale=0.25
    )
    text = json.dumps(s.to_json())
    s2 = Scaling.from_json(json.loads(text))
    np.testing.assert_array_equal(s2.input_mean, s.input_mean)
    np.testing.assert_array_equal(s2.input_scale, s.input_scale)
    assert (s2.target_mean, s2.target_scale) == (s.target_mean, s.target_scale)
    assert s2.input_mean.dtype == np.float64


@pytest.mark.parametrize(
    "bad",
    [
        {"input_mean": [0.0], "input_scale": [0.0]},
        {"input_mean": [0.0, 1.0], "input_scale": [1.0]},
        {"input_mean": [0.0], "input_scale": [1.0], "target_scale": -1.0},
        {"input_mean": ["a"], "input_scale": [1.0]},
        {"input_scale": [1.0]},
        {"input_mean": [float("nan")], "input_scale": [1.0]},
    ],
)
def test_scaling_from_json_rejects_bad(bad: dict) -> None:
    _raises("bad_scaling", Scaling.from_json, bad)


# ---------------------------------------------------------------------------------------------
# circle generator and split
# ---------------------------------------------------------------------------------------------


def test_make_circle_rule_and_determinism() -> None:
    ds = make_circle(2000, seed=3)
    assert ds.name == "circle" and ds.task == "classification"
    assert ds.feature_names == ["x1", "x2"] and ds.classes == [0, 1]
    assert ds.X.shape == (2000, 2) and ds.y.dtype == np.int64
    assert np.all(np.abs(ds.X) <= 1.0)
    inside = ds.X[:, 0] ** 2 + ds.X[:, 1] ** 2 <= 2.0 / math.pi
    np.testing.assert_array_equal(ds.y, inside.astype(np.int64))
    assert 0.45 < ds.y.mean() < 0.55  # disc of area 2 is half the square
    again = make_circle(2000, seed=3)
    np.testing.assert_array_equal(again.X, ds.X)
    assert again.sha256 == ds.sha256
    assert make_circle(2000, seed=4).sha256 != ds.sha256
    np.testing.assert_array_equal(ds.encoded_targets(), ds.y)
    with pytest.raises(ValueError):
        make_circle(0)


def test_train_validation_split() -> None:
    train, val = train_validation_split(100, 0.2, seed=5)
    assert len(val) == 20 and len(train) == 80
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(100))
    t2, v2 = train_validation_split(100, 0.2, seed=5)
    np.testing.assert_array_equal(train, t2)
    np.testing.assert_array_equal(val, v2)
    _, v3 = train_validation_split(100, 0.2, seed=6)
    assert not np.array_equal(val, v3)
    t0, v0 = train_validation_split(10, 0.0, seed=0)
    assert len(v0) == 0 and len(t0) == 10
    t1, v1 = train_validation_split(1, 0.9, seed=0)
    assert len(t1) == 1 and len(v1) == 0
    t2b, _ = train_validation_split(3, 0.99, seed=0)
    assert len(t2b) >= 1
    with pytest.raises(ValueError):
        train_validation_split(10, 1.0, seed=0)


def test_dataset_post_init_rejects_inconsistent() -> None:
    with pytest.raises(DatasetError):
        Dataset(X=np.zeros((2, 1)), y=np.zeros(3), task="regression", feature_names=["a"], classes=None)
    with pytest.raises(DatasetError):
        Dataset(X=np.zeros((2, 1)), y=np.zeros(2), task="regression", feature_names=["a"], classes=[0, 1])


def test_error_to_json() -> None:
    err = _raises("ragged_row", from_arrays, [[1.0], [1.0, 2.0]], [0, 1])
    d = err.to_json()
    assert d == {"problem": "ragged_row", "message": str(err), "row": 1, "column": None}


# ---------------------------------------------------------------------------------------------
# the opening CSV and Parquet share: one implementation, each format's wording and order kept
# ---------------------------------------------------------------------------------------------


def test_tabular_opening_messages_name_the_format() -> None:
    header_only = _parquet_bytes(pa.table({"a": pa.array([], pa.float64()), "t": pa.array([], pa.int64())}))
    cases = [
        (parse_csv, b"a,b\n1,2\n", "missing_target", "Target column 't' is not in the header (columns: ['a', 'b'])."),
        (parse_parquet, _parquet_bytes(pa.table({"a": [1.0]})), "missing_target",
         "Target column 't' is not in the file (columns: ['a'])."),
        (parse_csv, b"t,a,t\n0,1,0\n", "duplicate_column", "Target column 't' appears 2 times in the header."),
        (parse_parquet, _parquet_bytes(pa.Table.from_arrays([pa.array([0]), pa.array([1])], names=["t", "t"])),
         "duplicate_column", "Target column 't' appears 2 times."),
        (parse_csv, b"a,t\n", "empty", "The CSV file has a header but no data rows."),
        (parse_parquet, header_only, "empty", "The Parquet file has no rows."),
        (parse_csv, b"t\n0\n1\n", "no_features", "The CSV file has no feature columns besides the target."),
        (parse_parquet, _parquet_bytes(pa.table({"t": [0, 1]})), "no_features",
         "The Parquet file has no feature columns besides the target."),
    ]
    for parse, data, problem, message in cases:
        assert str(_raises(problem, parse, data, target="t")) == message


def test_tabular_opening_keeps_each_formats_precedence() -> None:
    # CSV reports a blank header cell by its header position, ahead of the feature-name checks ...
    err = _raises("bad_header", parse_csv, b"a, ,t\n1,2,0\n", target="t")
    assert str(err) == "Header column 1 has no name." and err.column == 1
    # ... and header problems ahead of a missing body,
    _raises("duplicate_column", parse_csv, b"a,a,t\n", target="t")
    # while Parquet, which knows its row count before decoding, reports the empty file first.
    names = ["a", "a", "t"]
    empty = pa.Table.from_arrays([pa.array([], pa.float64())] * 3, names=names)
    _raises("empty", parse_parquet, _parquet_bytes(empty), target="t")
    one_row = pa.Table.from_arrays([pa.array([1.0]), pa.array([2.0]), pa.array([0])], names=names)
    assert _raises("duplicate_column", parse_parquet, _parquet_bytes(one_row), target="t").column == "a"
    # A blank Parquet column name is a feature-name problem, numbered among the features.
    blank = pa.Table.from_arrays([pa.array([1.0]), pa.array([2.0]), pa.array([0])], names=["a", " ", "t"])
    err = _raises("bad_header", parse_parquet, _parquet_bytes(blank), target="t")
    assert str(err) == "Feature 1 has an empty name." and err.column == 1


def test_package_exports_and_stays_light() -> None:
    import subprocess
    import sys

    import lipspline.data as data

    for name in data.__all__:
        assert getattr(data, name) is not None, name
    probe = "import sys, lipspline.data; print(sorted({'torch', 'pyarrow'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
