"""Hostile and broken input for the HTTP API (issue 5, item 3).

Three families, each case saying what the service must answer:

* :func:`upload_cases`: dataset uploads (multipart files, a few raw bodies). Most are built here
  in code; the small files next to this module (``ragged.csv``, ``header_only.csv``,
  ``latin1.csv``, ``utf16.csv``) are kept as files so they can be opened and looked at.
* :data:`JSON_DATASET_CASES`: ``POST /v1/datasets`` with a JSON body.
* :data:`CONFIG_CASES`: ``POST /v1/jobs`` bodies (``{dataset_id}`` is filled in by the test).
* :data:`PREDICT_CASES`: ``POST /v1/models/{id}/predict`` bodies for a 2-feature model.

Every expectation names the status, and where the API reports it, the machine code
(``problem``), row and column of a data error, the field path of a validation error, and
words that the human ``detail`` must contain.
"""

from __future__ import annotations

import dataclasses
import io
import json
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
#: the upload limit the hostile-input deployment runs with (small, so a bomb is cheap to build)
MAX_UPLOAD_BYTES = 4 * 2**20
ABSENT = object()  # "the body does not carry this key" (row/column are None when not applicable)


@dataclass
class Case:
    name: str
    status: int
    #: words the problem's ``detail`` must contain (case-insensitive)
    words: tuple[str, ...] = ()
    #: ``problem`` code of a data error (``None``: not a data error, the key is not checked)
    problem: str | None = None
    row: Any = ABSENT
    column: Any = ABSENT
    #: field path that must appear among ``errors[].field`` of a validation error
    field: str | None = None
    # --- the request
    filename: str | None = None
    content: bytes = b""
    form: dict[str, str] = dataclasses.field(default_factory=dict)
    json_body: Any = ABSENT
    raw_body: bytes | None = None
    content_type: str = "application/json"
    #: several multipart parts at once (httpx ``files`` list), for form-level abuse
    parts: list | None = None
    #: a known service bug: the case is expected to fail until it is fixed (strict xfail)
    bug: str | None = None


def csv_bytes(text: str) -> bytes:
    return text.encode()


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _npy(header: dict, payload: bytes) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + payload


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def good_y(n: int = 4) -> np.ndarray:
    return np.arange(n, dtype=np.int64) % 2


def zip_bomb(inflated_bytes: int = 16 * 2**20) -> bytes:
    """A real bomb: ``X.npy`` holds ``inflated_bytes`` of zeros, deflated to a few KiB."""
    rows = inflated_bytes // 8
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("X.npy", "w", force_zip64=True) as member:
            member.write(_npy({"descr": "<f8", "fortran_order": False, "shape": (rows, 1)}, b""))
            zeros = bytes(2**20)
            for _ in range(inflated_bytes // len(zeros)):
                member.write(zeros)
        with archive.open("y.npy", "w", force_zip64=True) as member:
            member.write(_npy({"descr": "<i8", "fortran_order": False, "shape": (rows,)}, b""))
            member.write(bytes(rows * 8))
    return buffer.getvalue()


def declared_size_bomb(declared: int = 0xFFFFFFF0) -> bytes:
    """A tiny .npz whose zip directory says ``X.npy`` inflates to ~4 GiB (the header is forged)."""
    data = bytearray(_npz(X=np.zeros((4, 2)), y=good_y()))
    # central directory entry: uncompressed size at offset 24; local header: at offset 22
    for signature, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
        start = data.index(signature)  # the first member is X.npy
        data[start + offset : start + offset + 4] = struct.pack("<I", declared)
    return bytes(data)


def huge_shape_npz() -> bytes:
    """``X.npy`` declares a (10^6 x 10^6) float64 array (8 TB) but holds 32 bytes."""
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}
    return _zip({"X.npy": _npy(header, bytes(32)), "y.npy": _npy({"descr": "<i8", "fortran_order": False,
                                                                  "shape": (4,)}, bytes(32))})


def short_payload_npz() -> bytes:
    """``X.npy`` declares (1000, 100) float64 (800 kB, under the limit) but holds 64 bytes."""
    header = {"descr": "<f8", "fortran_order": False, "shape": (1000, 100)}
    return _zip({"X.npy": _npy(header, bytes(64)), "y.npy": _npy({"descr": "<i8", "fortran_order": False,
                                                                  "shape": (4,)}, bytes(32))})


def truncated_header_npz() -> bytes:
    """``X.npy`` whose header dict is cut off mid-way (the length field matches the cut)."""
    header = b"{'descr': '<f8',"
    member = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header
    return _zip({"X.npy": member, "y.npy": member})


def pickled_npz() -> bytes:
    """Object arrays: loading them would need unpickling (here: harmless dicts, but it could be code)."""
    X = np.empty((4, 2), dtype=object)
    for i in range(4):
        for j in range(2):
            X[i, j] = {"exec": "print('pwned')", "i": i, "j": j}
    return _npz(X=X, y=good_y())


def pickled_y_npz() -> bytes:
    y = np.array([{"label": 0}, {"label": 1}, None, 1], dtype=object)
    return _npz(X=np.zeros((4, 2)), y=y)


def _parquet(table_dict: dict[str, list]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table(table_dict), buffer)
    return buffer.getvalue()


def good_parquet() -> bytes:
    return _parquet({"x1": [0.1, 0.2, 0.3, 0.4], "x2": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]})


def binary_junk(n: int = 4096, seed: int = 5) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8).tobytes()


def upload_cases() -> list[Case]:
    """At least 20 bad uploads; every one must be refused with a problem that names it."""
    good_csv = "x1,x2,y\n0.1,0.2,0\n0.3,0.4,1\n0.5,0.6,0\n"
    long_cell = '"' + "9" * 200_000 + '"'
    cases = [
        # ---- CSV: values
        Case("csv-nan", 422, ("nan", "row 1", "x2"), "nan", 1, "x2", filename="nan.csv",
             content=csv_bytes("x1,x2,y\n0.1,0.2,0\n0.3,nan,1\n"), form={"target": "y"}),
        Case("csv-inf", 422, ("infinite", "row 2", "x1"), "inf", 2, "x1", filename="inf.csv",
             content=csv_bytes("x1,x2,y\n0.1,0.2,0\n0.3,0.4,1\n-inf,0.6,0\n"), form={"target": "y"}),
        Case("csv-overflow-to-inf", 422, ("infinite", "row 0", "x2"), "inf", 0, "x2", filename="big.csv",
             content=csv_bytes("x1,x2,y\n0.1,1e999,0\n0.3,0.4,1\n"), form={"target": "y"}),
        Case("csv-inf-target-regression", 422, ("infinite", "row 1", "y"), "inf", 1, "y", filename="t.csv",
             content=csv_bytes("x1,y\n0.1,0.5\n0.2,inf\n0.3,1.5\n"), form={"target": "y", "task": "regression"}),
        Case("csv-ragged", 422, ("row 1", "fields"), "ragged_row", 1, None, filename="ragged.csv",
             content=(HERE / "ragged.csv").read_bytes(), form={"target": "y"}),
        Case("csv-text-in-numeric", 422, ("row 1", "x1", "not a number"), "non_numeric", 1, "x1",
             filename="text.csv", content=csv_bytes("x1,x2,y\n0.1,0.2,0\nabc,0.4,1\n"), form={"target": "y"}),
        Case("csv-missing-cell", 422, ("row 0", "x2", "empty"), "missing_value", 0, "x2", filename="hole.csv",
             content=csv_bytes("x1,x2,y\n0.1,,0\n0.3,0.4,1\n"), form={"target": "y"}),
        Case("csv-missing-label", 422, ("row 1", "empty target"), "missing_value", 1, "y", filename="nolabel.csv",
             content=csv_bytes("x1,x2,y\n0.1,0.2,0\n0.3,0.4,\n"), form={"target": "y"}),
        Case("csv-text-target-regression", 422, ("row 1", "regression"), "non_numeric", 1, "y",
             filename="tr.csv", content=csv_bytes("x1,y\n0.1,1.5\n0.2,high\n"),
             form={"target": "y", "task": "regression"}),
        # ---- CSV: shape and header
        Case("csv-empty-file", 422, ("empty",), "empty", None, None, filename="empty.csv", content=b"",
             form={"target": "y"}),
        Case("csv-blank-lines-only", 422, ("empty",), "empty", None, None, filename="blank.csv",
             content=b"\n \n\r\n\t\n", form={"target": "y"}),
        Case("csv-header-only", 422, ("header", "no data rows"), "empty", None, None, filename="header_only.csv",
             content=(HERE / "header_only.csv").read_bytes(), form={"target": "y"}),
        Case("csv-one-class", 422, ("two classes", "y"), "single_class", None, "y", filename="one.csv",
             content=csv_bytes("x1,x2,y\n0.1,0.2,1\n0.3,0.4,1\n0.5,0.6,1\n"), form={"target": "y"}),
        Case("csv-duplicate-target", 422, ("'y'", "2 times"), "duplicate_column", None, "y", filename="dup.csv",
             content=csv_bytes("x1,y,y\n0.1,0,1\n0.3,1,0\n"), form={"target": "y"}),
        Case("csv-duplicate-feature", 422, ("'x1'", "more than once"), "duplicate_column", None, "x1",
             filename="dupx.csv", content=csv_bytes("x1,x1,y\n0.1,0.2,0\n0.3,0.4,1\n"), form={"target": "y"}),
        Case("csv-missing-target", 422, ("'label'", "not in the header"), "missing_target", None, "label",
             filename="miss.csv", content=csv_bytes(good_csv), form={"target": "label"}),
        Case("csv-no-target-field", 422, ("target",), "missing_target", None, "target", filename="notarget.csv",
             content=csv_bytes(good_csv)),
        Case("csv-only-target-column", 422, ("no feature columns",), "no_features", None, None, filename="only.csv",
             content=csv_bytes("y\n0\n1\n"), form={"target": "y"}),
        Case("csv-unnamed-header-column", 422, ("no name",), "bad_header", None, 0, filename="unnamed.csv",
             content=csv_bytes(",x2,y\n0.1,0.2,0\n0.3,0.4,1\n"), form={"target": "y"}),
        Case("csv-field-too-long", 422, ("csv syntax error",), "bad_csv", filename="long.csv",
             content=csv_bytes(f"x1,y\n{long_cell},0\n"), form={"target": "y"}),
        # ---- encodings and junk
        Case("csv-utf16", 422, ("utf-8",), "bad_encoding", None, None, filename="utf16.csv",
             content=(HERE / "utf16.csv").read_bytes(), form={"target": "y"}),
        Case("csv-latin1", 422, ("utf-8", "offset"), "bad_encoding", None, None, filename="latin1.csv",
             content=(HERE / "latin1.csv").read_bytes(), form={"target": "y"}),
        Case("csv-nul-bytes", 422, ("nul",), "bad_encoding", None, None, filename="nul.csv",
             content=b"x1,x2,y\n0.1,0\x00.2,0\n0.3,0.4,1\n", form={"target": "y"}),
        Case("csv-binary-junk", 422, ("utf-8",), "bad_encoding", None, None, filename="junk.csv",
             content=binary_junk(), form={"target": "y"}),
        # ---- npz
        Case("npz-pickled-objects", 422, ("object dtype", "pickle"), "bad_npz", None, "X", filename="pickle.npz",
             content=pickled_npz()),
        Case("npz-pickled-labels", 422, ("object dtype", "pickle"), "bad_npz", None, "y", filename="pickley.npz",
             content=pickled_y_npz()),
        Case("npz-zip-bomb", 413, ("limit",), "too_large", None, None, filename="bomb.npz", content=zip_bomb()),
        Case("npz-declared-size-bomb", 413, ("limit",), "too_large", None, None, filename="forged.npz",
             content=declared_size_bomb()),
        Case("npz-huge-declared-shape", 413, ("shape", "limit"), "too_large", None, "X", filename="shape.npz",
             content=huge_shape_npz()),
        Case("npz-shape-beyond-payload", 422, ("too little data",), "bad_npz", None, "X", filename="short.npz",
             content=short_payload_npz()),
        Case("npz-truncated-npy-header", 422, ("x.npy", "not a valid .npy"), "bad_npz", None, None,
             filename="cut.npz", content=truncated_header_npz()),
        Case("npz-unknown-npy-version", 422, ("version",), "bad_npz", None, None, filename="v9.npz",
             content=_zip({"X.npy": b"\x93NUMPY\x09\x00garbage", "y.npy": b"nothing"})),
        Case("npz-complex-X", 422, ("numeric", "complex"), "non_numeric", None, "X", filename="cplx.npz",
             content=_npz(X=np.zeros((4, 2), dtype=complex), y=good_y())),
        Case("npz-2d-y", 422, ("'y'", "1-d"), "bad_shape", None, "y", filename="y2.npz",
             content=_npz(X=np.zeros((4, 2)), y=np.zeros((4, 2)))),
        Case("npz-missing-y", 422, ("'y'", "missing"), "bad_npz", None, "y", filename="noy.npz",
             content=_npz(X=np.zeros((4, 2)))),
        Case("npz-not-a-zip", 422, ("not a zip",), "bad_npz", None, None, filename="junk.npz",
             content=binary_junk(seed=7)),
        Case("npz-raw-pickle", 422, ("not a zip",), "bad_npz", None, None, filename="model.npz",
             content=b"\x80\x04\x95\x1c\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94."),
        Case("npz-nan", 422, ("nan", "row 2", "x2"), "nan", 2, "x2", filename="nan.npz",
             content=_npz(X=np.array([[0, 1], [2, 3], [4, np.nan], [6, 7]], dtype=float), y=good_y())),
        Case("npz-length-mismatch", 422, ("4 input rows", "3 targets"), "length_mismatch", None, "y",
             filename="len.npz", content=_npz(X=np.zeros((4, 2)), y=good_y(3))),
        Case("npz-1d-X", 422, ("'x'", "shape"), "bad_shape", None, "X", filename="flat.npz",
             content=_npz(X=np.zeros(4), y=good_y())),
        Case("npz-string-X", 422, ("numeric",), "non_numeric", None, "X", filename="strx.npz",
             content=_npz(X=np.array([["a", "b"], ["c", "d"]]), y=good_y(2))),
        Case("npz-empty", 422, ("no rows",), "empty", None, None, filename="empty.npz",
             content=_npz(X=np.zeros((0, 2)), y=np.zeros(0, dtype=np.int64))),
        # ---- parquet
        Case("parquet-truncated", 422, ("parquet",), "bad_parquet", None, None, filename="cut.parquet",
             content=good_parquet()[: len(good_parquet()) // 2], form={"target": "y"}),
        Case("parquet-junk", 422, ("parquet",), "bad_parquet", None, None, filename="junk.parquet",
             content=binary_junk(seed=9), form={"target": "y"}),
        Case("parquet-text-feature", 422, ("x2", "not a number"), "non_numeric", None, "x2", filename="txt.pq",
             content=_parquet({"x1": [0.1, 0.2], "x2": ["a", "b"], "y": [0, 1]}), form={"target": "y"}),
        Case("parquet-null-cell", 422, ("row 1", "x1", "empty"), "missing_value", 1, "x1", filename="null.parquet",
             content=_parquet({"x1": [0.1, None, 0.3], "y": [0, 1, 0]}), form={"target": "y"}),
        Case("parquet-nan", 422, ("nan", "row 0", "x1"), "nan", 0, "x1", filename="nan.parquet",
             content=_parquet({"x1": [float("nan"), 0.2, 0.3], "y": [0, 1, 0]}), form={"target": "y"}),
        Case("parquet-list-column", 422, ("'x'", "not a number"), "non_numeric", None, "x", filename="list.parquet",
             content=_parquet({"x": [[1.0], [2.0]], "y": [0, 1]}), form={"target": "y"}),
        Case("parquet-null-target", 422, ("row 0", "no target"), "missing_value", 0, "y", filename="nt.parquet",
             content=_parquet({"x": [1.0, 2.0], "y": [None, 1]}), form={"target": "y"}),
        Case("parquet-missing-target", 422, ("'label'",), "missing_target", None, "label", filename="m.parquet",
             content=good_parquet(), form={"target": "label"}),
        # ---- file type and form
        Case("unsupported-extension", 422, (".xlsx", "unsupported"), "unsupported_format", None, None,
             filename="data.xlsx", content=b"PK\x03\x04 not really excel", form={"target": "y"}),
        Case("pickle-extension", 422, (".pkl",), "unsupported_format", None, None, filename="model.pkl",
             content=b"\x80\x04K\x01.", form={"target": "y"}),
        Case("no-extension", 422, ("unsupported",), "unsupported_format", None, None, filename="data",
             content=csv_bytes(good_csv), form={"target": "y"}),
        Case("bad-task-field", 422, ("task",), field="task", filename="ok.csv", content=csv_bytes(good_csv),
             form={"target": "y", "task": "clustering"}),
        Case("csv-too-many-classes", 422, ("1500 classes", "limit"), filename="classes.csv",
             content=csv_bytes("x,y\n" + "".join(f"{i},c{i}\n" for i in range(1500))),
             form={"target": "y", "task": "classification"}),
        Case("too-large-upload", 413, ("limit",), filename="big.csv",
             content=b"x1,y\n" + b"0.1,0\n" * (MAX_UPLOAD_BYTES // 6 + 10), form={"target": "y"}),
        # ---- not a file at all
        Case("multipart-without-file", 422, ("file",), field="file", form={"target": "y"}),
        Case("multipart-two-files", 400, ("too many files",), form={"target": "y"},
             parts=[("file", ("a.csv", csv_bytes(good_csv))), ("file", ("b.csv", csv_bytes(good_csv)))]),
        Case("multipart-too-many-fields", 400, ("too many fields",), filename="ok.csv", content=csv_bytes(good_csv),
             form={f"field{i}": "x" for i in range(60)}),  # the limit is 40 (room for 20 repeated tags)
        Case("multipart-no-boundary", 400, ("boundary",), raw_body=csv_bytes(good_csv),
             content_type="multipart/form-data"),
        Case("multipart-file-as-text", 422, ("file",), field="file", form={"target": "y"},
             parts=[("file", (None, good_csv))]),
        Case("wrong-content-type", 415, ("content-type",), raw_body=csv_bytes(good_csv), content_type="text/csv"),
    ]
    return cases


#: POST /v1/datasets with a JSON body
JSON_DATASET_CASES = [
    Case("json-ragged", 422, ("row 1",), "ragged_row", 1, None, json_body={"inputs": [[1, 2], [3]], "targets": [0, 1]}),
    Case("json-text-cell", 422, ("row 0", "x2", "not a number"), "non_numeric", 0, "x2",
         json_body={"inputs": [[1, "two"], [3, 4]], "targets": [0, 1]}),
    Case("json-numeric-string-cell", 422, ("row 1", "not a number"), "non_numeric", 1, "x1",
         json_body={"inputs": [[1, 2], ["3", 4]], "targets": [0, 1]}),
    Case("json-nan-token", 422, ("nan", "row 1"), "nan", 1, "x1",
         raw_body=b'{"inputs": [[0.5, 1], [NaN, 2]], "targets": [0, 1]}'),
    Case("json-overflow-number", 422, ("infinite", "row 0"), "inf", 0, "x1",
         raw_body=b'{"inputs": [[1e999, 1], [0, 2]], "targets": [0, 1]}'),
    Case("json-one-class", 422, ("two classes",), "single_class",
         json_body={"inputs": [[1], [2], [3]], "targets": [1, 1, 1]}),
    Case("json-length-mismatch", 422, ("3 input rows", "2 targets"), "length_mismatch",
         json_body={"inputs": [[1], [2], [3]], "targets": [0, 1]}),
    Case("json-3d-inputs", 422, ("2-d",), "bad_shape", json_body={"inputs": [[[1]], [[2]]], "targets": [0, 1]}),
    Case("json-empty-inputs", 422, ("inputs",), field="inputs", json_body={"inputs": [], "targets": []}),
    Case("json-no-features", 422, ("no feature",), "no_features", json_body={"inputs": [[], []], "targets": [0, 1]}),
    Case("json-null-target", 422, ("row 1", "no value"), "missing_value", 1, "y",
         json_body={"inputs": [[1], [2]], "targets": [0, None]}),
    Case("json-object-target", 422, ("row 0",), "non_numeric", 0, "y",
         json_body={"inputs": [[1], [2]], "targets": [{"a": 1}, 1]}),
    Case("json-unknown-key", 422, ("extra",), field="pickle", json_body={"inputs": [[1], [2]], "targets": [0, 1],
                                                                        "pickle": "gASV"}),
    Case("json-bad-task", 422, ("task",), field="task",
         json_body={"inputs": [[1], [2]], "targets": [0, 1], "task": "ranking"}),
    Case("json-not-json", 400, ("json",), raw_body=b'{"inputs": [[1, 2]'),
    Case("json-not-utf8", 400, ("json",), raw_body=b'{"name": "\xff\xfe", "inputs": [[1]], "targets": [0]}'),
    Case("json-array-body", 422, (), field="body", json_body=[[1, 2], [3, 4]]),
    Case("json-duplicate-feature-names", 422, ("more than once",), "duplicate_column", None, "a",
         json_body={"inputs": [[1, 2], [3, 4]], "targets": [0, 1], "feature_names": ["a", "a"]}),
    Case("json-deep-nesting", 400, ("json",), raw_body=b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    Case("json-mixed-label-types-with-huge-int", 422, ("row",), "non_numeric",
         raw_body=b'{"inputs": [[0], [1]], "targets": ["a", 1000000000000000000000000000000]}'),
    Case("json-huge-integer-cell", 422, ("numbers",), "bad_shape",
         raw_body=b'{"inputs": [[' + b"9" * 400 + b'], [2]], "targets": [0, 1]}'),
    Case("json-too-many-features", 422, ("10001 features", "limit"),
         json_body={"inputs": [[0.0] * 10_001, [1.0] * 10_001], "targets": [0, 1]}),
    Case("json-name-too-long", 422, ("name",), field="name", json_body={"name": "n" * 300, "inputs": [[1], [2]],
                                                                      "targets": [0, 1]}),
    Case("json-feature-names-count", 422, ("2 feature names", "1 feature"), "bad_shape",
         json_body={"inputs": [[1], [2]], "targets": [0, 1], "feature_names": ["a", "b"]}),
]


def _config(**sections: Any) -> dict:
    return {"dataset_id": "{dataset_id}", "config": sections}


#: POST /v1/jobs (the string "{dataset_id}" is replaced with a real, owned dataset id)
CONFIG_CASES = [
    Case("config-unknown-top-key", 422, ("config.optimiser", "extra"), field="config.optimiser",
         json_body=_config(optimiser="adam")),
    Case("config-unknown-nested-key", 422, ("config.architecture.width",), field="config.architecture.width",
         json_body=_config(architecture={"width": 16})),
    Case("config-hidden-zero", 422, ("hidden",), field="config.architecture",
         json_body=_config(architecture={"hidden": [0]})),
    Case("config-hidden-negative", 422, ("hidden",), field="config.architecture",
         json_body=_config(architecture={"hidden": [8, -3]})),
    Case("config-hidden-too-wide", 422, ("hidden",), field="config.architecture",
         json_body=_config(architecture={"hidden": [10**6]})),
    Case("config-hidden-too-deep", 422, ("hidden",), field="config.architecture.hidden",
         json_body=_config(architecture={"hidden": [2] * 1000})),
    Case("config-hidden-string", 422, ("hidden",), field="config.architecture.hidden",
         json_body=_config(architecture={"hidden": "16,16"})),
    Case("config-hidden-float", 422, ("hidden",), field="config.architecture.hidden.0",
         json_body=_config(architecture={"hidden": [2.5]})),
    Case("config-groupsort-odd", 422, ("groupsort",), field="config.architecture",
         json_body=_config(architecture={"hidden": [3], "activation": "groupsort"})),
    Case("config-cnn-without-shape", 422, ("input_shape",), field="config.architecture",
         json_body=_config(architecture={"kind": "cnn"})),
    Case("config-unknown-activation", 422, ("activation",), field="config.architecture.activation",
         json_body=_config(architecture={"activation": "sigmoid"})),
    Case("config-epochs-zero", 422, ("epochs",), field="config.training.epochs",
         json_body=_config(training={"epochs": 0})),
    Case("config-epochs-huge", 422, ("epochs",), field="config.training.epochs",
         json_body=_config(training={"epochs": 10**12})),
    Case("config-epochs-string", 422, ("epochs",), field="config.training.epochs",
         json_body=_config(training={"epochs": "ten"})),
    Case("config-epochs-fraction", 422, ("epochs",), field="config.training.epochs",
         json_body=_config(training={"epochs": 1.5})),
    Case("config-lr-negative", 422, ("lr",), field="config.training.lr", json_body=_config(training={"lr": -0.1})),
    Case("config-lr-nan", 422, ("lr",), field="config.training.lr",
         raw_body=b'{"dataset_id": "{dataset_id}", "config": {"training": {"lr": NaN}}}'),
    Case("config-validation-split-one", 422, ("validation_split",), field="config.training.validation_split",
         json_body=_config(training={"validation_split": 1.0})),
    Case("config-batch-size-zero", 422, ("batch_size",), field="config.training.batch_size",
         json_body=_config(training={"batch_size": 0})),
    Case("config-seed-negative", 422, ("seed",), field="config.training.seed",
         json_body=_config(training={"seed": -1})),
    Case("config-knots-two", 422, ("knots",), field="config.spline.knots", json_body=_config(spline={"knots": 2})),
    Case("config-range-zero", 422, ("range",), field="config.spline.range", json_body=_config(spline={"range": 0})),
    Case("config-lambda-infinite", 422, ("lambda",), field="config.objective.lambda",
         raw_body=b'{"dataset_id": "{dataset_id}", "config": {"objective": {"lambda": Infinity}}}'),
    Case("config-unknown-mode", 422, ("mode",), field="config.objective.mode",
         json_body=_config(objective={"mode": "l1"})),
    Case("config-device-tpu", 422, ("device",), field="config.device", json_body=_config(device="tpu")),
    Case("config-not-an-object", 422, ("config",), field="config", json_body={"dataset_id": "{dataset_id}",
                                                                             "config": [1, 2]}),
    Case("config-null", 422, ("config",), field="config", json_body={"dataset_id": "{dataset_id}", "config": None}),
    Case("job-missing-dataset-id", 422, ("dataset_id",), field="dataset_id", json_body={"config": {}}),
    Case("job-unknown-dataset", 404, ("dataset_id", "does not exist"), json_body={"dataset_id": "nope", "config": {}}),
    Case("job-dataset-id-too-long", 422, ("dataset_id",), field="dataset_id",
         json_body={"dataset_id": "x" * 10_000, "config": {}}),
    Case("limit-width", 422, ("width 5000", "limit"), field="config.architecture.hidden.0",
         json_body=_config(architecture={"hidden": [5000]})),
    Case("limit-depth", 422, ("20 hidden layers", "limit"), field="config.architecture.hidden",
         json_body=_config(architecture={"hidden": [2] * 20})),
    Case("limit-epochs", 422, ("50000", "limit"), field="config.training.epochs",
         json_body=_config(training={"epochs": 50_000})),
    Case("limit-knots", 422, ("1000 knots", "limit"), field="config.spline.knots",
         json_body=_config(spline={"knots": 1000})),
    Case("limit-parameters", 422, ("parameters", "limit"), field="config.architecture",
         json_body=_config(architecture={"hidden": [4096] * 16})),
    Case("job-not-json", 400, ("json",), raw_body=b"dataset_id=abc"),
    Case("job-deep-nesting", 400, ("body",),
         raw_body=b'{"dataset_id": "{dataset_id}", "config": ' + b'{"a":' * 50_000 + b"1" + b"}" * 50_001),
]


#: POST /v1/models/{id}/predict of a model with 2 features
PREDICT_CASES = [
    Case("predict-nan", 422, ("not finite",), field="inputs", raw_body=b'{"inputs": [[0.1, NaN]]}'),
    Case("predict-infinity", 422, ("not finite",), field="inputs", raw_body=b'{"inputs": [[-Infinity, 0.1]]}'),
    Case("predict-overflow-literal", 422, ("not finite",), field="inputs", raw_body=b'{"inputs": [[1e400, 0.1]]}'),
    # 1e300 is served since the rounding bound is scale-safe (finite outputs, finite bound); values
    # whose outputs overflow float64 are still refused
    Case("predict-huge-number", 422, ("inputs.0", "too large"), field="inputs.0",
         json_body={"inputs": [[1.7e308, 1.7e308]]}),
    Case("predict-huge-integer", 422, ("inputs.0.0",), field="inputs.0.0",
         raw_body=b'{"inputs": [[' + b"9" * 400 + b', 0.0]]}'),
    Case("predict-integer-beyond-digit-limit", 400, ("body",), raw_body=b'{"inputs": [[' + b"9" * 5000 + b', 0.0]]}'),
    Case("predict-too-many-features", 422, ("inputs.0", "3 features", "expects 2"), field="inputs.0",
         json_body={"inputs": [[1.0, 2.0, 3.0]]}),
    Case("predict-too-few-features", 422, ("row 1", "row 0 has 2"), field="inputs",
         json_body={"inputs": [[1.0, 2.0], [1.0]]}),
    Case("predict-zero-features", 422, ("inputs",), field="inputs.0", json_body={"inputs": [[]]}),
    Case("predict-empty-inputs", 422, ("inputs",), field="inputs", json_body={"inputs": []}),
    Case("predict-empty-object", 422, ("inputs",), field="inputs", json_body={}),
    Case("predict-empty-body", 422, (), raw_body=b""),
    Case("predict-strings", 422, ("inputs.0.0",), field="inputs.0.0", json_body={"inputs": [["a", "b"]]}),
    Case("predict-null-cell", 422, ("inputs.0.1",), field="inputs.0.1", json_body={"inputs": [[0.1, None]]}),
    Case("predict-flat-list", 422, ("inputs.0",), field="inputs.0", json_body={"inputs": [0.1, 0.2]}),
    Case("predict-nested-too-deep", 422, ("inputs.0.0",), field="inputs.0.0", json_body={"inputs": [[[0.1, 0.2]]]}),
    Case("predict-deep-nesting-bomb", 400, ("body",), raw_body=b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    Case("predict-inputs-object", 422, ("inputs",), field="inputs", json_body={"inputs": {"x1": 0.1, "x2": 0.2}}),
    Case("predict-unknown-key", 422, ("extra",), field="model", json_body={"inputs": [[0.1, 0.2]], "model": "x"}),
    Case("predict-negative-epsilon", 422, ("epsilon",), field="epsilon",
         json_body={"inputs": [[0.1, 0.2]], "epsilon": -1}),
    Case("predict-nan-epsilon", 422, ("epsilon",), field="epsilon",
         raw_body=b'{"inputs": [[0.1, 0.2]], "epsilon": NaN}'),
    Case("predict-string-epsilon", 422, ("epsilon",), field="epsilon",
         json_body={"inputs": [[0.1, 0.2]], "epsilon": "small"}),
    Case("predict-too-many-rows", 422, ("inputs", "limit"), field="inputs",
         json_body={"inputs": [[0.0, 0.0]] * 10_001}),
    Case("predict-not-json", 400, ("json",), raw_body=b"{inputs: [[0.1, 0.2]]}"),
    Case("predict-not-utf8", 400, ("body",), raw_body=b'{"inputs": [[0.1, 0.2]], "epsilon": "\xff"}'),
    Case("predict-array-body", 422, (), json_body=[[0.1, 0.2]]),
]


def request_kwargs(case: Case, dataset_id: str | None = None) -> dict[str, Any]:
    """httpx keyword arguments that send ``case``."""
    if case.parts is not None:
        return {"files": case.parts, "data": case.form}
    if case.filename is not None or (case.form and case.json_body is ABSENT and case.raw_body is None):
        files = {"file": (case.filename, case.content, "application/octet-stream")} if case.filename else None
        if files is None:  # a multipart body without a file part
            files = {"other": (None, "x")}
        return {"files": files, "data": case.form}
    if case.raw_body is not None:
        body = case.raw_body
        if dataset_id is not None:
            body = body.replace(b"{dataset_id}", dataset_id.encode())
        return {"content": body, "headers": {"content-type": case.content_type}}
    body = json.dumps(case.json_body)
    if dataset_id is not None:
        body = body.replace("{dataset_id}", dataset_id)
    return {"content": body.encode(), "headers": {"content-type": "application/json"}}
