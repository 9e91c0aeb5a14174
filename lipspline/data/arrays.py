"""Array inputs: in-memory rows (e.g. a JSON body) and numpy ``.npz`` uploads.

Both formats carry a ready-made matrix rather than a table of named columns, so they share
no reading logic with CSV/Parquet; what they need is defence against malformed shapes
(ragged rows, cells that are not numbers) and, for ``.npz``, against archives built to
exhaust memory or to smuggle in pickled objects.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from lipspline.data.dataset import Dataset, Task
from lipspline.data.errors import DatasetError, fmt_column
from lipspline.data.labels import is_number
from lipspline.data.validation import DEFAULT_MAX_BYTES, build_dataset, default_feature_names, open_upload


def _locate_bad_input(rows: Sequence[Any], feature_names: Sequence[str] | None) -> DatasetError:
    """Walk nested-list inputs to find the first ragged row or non-numeric cell.

    Only called after the fast numpy conversion failed or produced a non-numeric dtype, so the
    slow Python loop runs on the error path only. Columns are reported by feature name, the
    same way NaN errors are, so clients see one naming scheme.
    """
    width: int | None = None
    for i, row in enumerate(rows):
        if isinstance(row, str | bytes) or not isinstance(row, Sequence | np.ndarray):
            return DatasetError(f"Row {i} is not a list of feature values.", problem="bad_shape", row=i)
        if width is None:
            width = len(row)
        elif len(row) != width:
            return DatasetError(f"Row {i} has {len(row)} values but row 0 has {width}.", problem="ragged_row", row=i)
        names = list(feature_names) if feature_names is not None and len(feature_names) == width else None
        for j, cell in enumerate(row):
            if not is_number(cell):
                column = names[j] if names is not None else default_feature_names(width)[j]
                return DatasetError(
                    f"Row {i}, {fmt_column(column)} holds {cell!r}, which is not a number.",
                    problem="non_numeric",
                    row=i,
                    column=column,
                )
    return DatasetError("Inputs must be a 2-D table of numbers.", problem="bad_shape")


def from_arrays(
    inputs: Any,
    targets: Any,
    *,
    task: Task | None = None,
    feature_names: Sequence[str] | None = None,
    name: str = "dataset",
) -> Dataset:
    """Validate in-memory data (nested lists, e.g. from JSON, or numpy arrays).

    Strings in ``inputs`` are rejected even when they look numeric: a JSON client sending
    ``"1.5"`` has a bug worth reporting rather than papering over.
    """
    if isinstance(inputs, np.ndarray):
        arr = inputs
    else:
        if isinstance(inputs, str | bytes) or not isinstance(inputs, Sequence):
            raise DatasetError("Inputs must be a list of rows.", problem="bad_shape")
        if len(inputs) == 0:
            raise DatasetError("The dataset has no rows.", problem="empty")
        try:
            arr = np.asarray(inputs)
        except (ValueError, TypeError):
            raise _locate_bad_input(inputs, feature_names) from None
    if arr.dtype.kind not in "biuf":
        if arr.ndim == 2 or (arr.dtype.kind == "O" and arr.ndim == 1):
            # Walk the caller's own objects: numpy may have turned 4.0 into the string '4.0'.
            raise _locate_bad_input(inputs if not isinstance(inputs, np.ndarray) else list(arr), feature_names)
        raise DatasetError(f"Inputs must be numeric, got {arr.dtype}.", problem="non_numeric")
    if arr.size == 0 and arr.shape[:1] == (0,):
        raise DatasetError("The dataset has no rows.", problem="empty")
    if arr.ndim != 2:
        raise DatasetError(f"Inputs must be a 2-D table (rows x features), got shape {arr.shape}.", problem="bad_shape")
    return build_dataset(
        arr.astype(np.float64), targets, task=task, feature_names=feature_names, name=name, target_name="y"
    )


def read_npy_header(fp: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of the .npy stream ``fp``, which is left at the first byte of the data."""
    fmt = np.lib.format
    version = fmt.read_magic(fp)
    if version == (1, 0):
        return fmt.read_array_header_1_0(fp)
    if version in ((2, 0), (3, 0)):
        return fmt.read_array_header_2_0(fp)
    raise ValueError(f"unsupported .npy version {version}")


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype]:
    """Read only the .npy header of a member: shape and dtype, without touching the payload."""
    try:
        with zf.open(info) as fp:
            shape, _fortran, dtype = read_npy_header(fp)
    except Exception as exc:  # numpy's header parser raises many types (tokenize.TokenError for a cut-off dict)
        raise DatasetError(f"Member {info.filename!r} is not a valid .npy array: {exc}.", problem="bad_npz") from exc
    return tuple(int(s) for s in shape), np.dtype(dtype)


def _preflight_npz(data: bytes, max_bytes: int) -> None:
    """Reject oversized or pickled content before numpy inflates anything (:func:`check_npz_members`)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DatasetError("The .npz upload is not a zip archive.", problem="bad_npz") from exc
    with zf:
        check_npz_members(zf, max_bytes)


def check_npz_members(zf: zipfile.ZipFile, max_bytes: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """The shape and dtype of the ``X`` and ``y`` members, read from their headers alone; a DatasetError
    for oversized or pickled content, before numpy inflates anything.

    A zip bomb is caught by the declared uncompressed size in the zip directory; a tiny
    member whose .npy header declares a gigantic shape is caught by shape x itemsize; object
    dtypes (which would need unpickling) are refused from the header alone.
    """
    infos = zf.infolist()
    total = 0
    for info in infos:
        total += info.file_size
        if info.file_size > max_bytes or total > max_bytes:
            raise DatasetError(
                f"Member {info.filename!r} would decompress past the {max_bytes}-byte limit.",
                problem="too_large",
            )
    members = {info.filename: info for info in infos}
    headers = {}
    for key in ("X", "y"):
        info = members.get(f"{key}.npy")
        if info is None:
            found = sorted(m.removesuffix(".npy") for m in members)
            raise DatasetError(
                f"The .npz file needs arrays 'X' and 'y'; {key!r} is missing (found {found}).",
                problem="bad_npz",
                column=key,
            )
        shape, dtype = headers[key] = _npy_header(zf, info)
        if dtype.hasobject:
            raise DatasetError(
                f"Array {key!r} has object dtype; pickled data is never loaded.", problem="bad_npz", column=key
            )
        declared = math.prod(shape) * dtype.itemsize
        if declared > max_bytes:
            raise DatasetError(
                f"Array {key!r} declares shape {shape} ({declared} bytes), over the {max_bytes}-byte limit.",
                problem="too_large",
                column=key,
            )
        if declared > info.file_size:
            raise DatasetError(
                f"Array {key!r} declares shape {shape} but the file holds too little data.",
                problem="bad_npz",
                column=key,
            )
    return headers


def parse_npz(
    data: bytes,
    *,
    task: Task | None = None,
    name: str = "dataset",
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Dataset:
    """Parse a numpy ``.npz`` upload holding arrays ``X`` (numeric) and ``y`` (1-D).

    ``X`` with more than two dimensions (e.g. images) is flattened per sample. Loading always
    uses ``allow_pickle=False``, after a header-only preflight that bounds memory use.
    """
    open_upload(data, task, max_bytes)
    _preflight_npz(data, max_bytes)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            X = npz["X"]
            y = npz["y"]
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"Could not read the .npz file: {exc}.", problem="bad_npz") from exc
    if X.dtype.kind not in "biuf":
        raise DatasetError(f"Array 'X' must be numeric, got {X.dtype}.", problem="non_numeric", column="X")
    if X.ndim < 2:
        raise DatasetError(
            f"Array 'X' must have one row per sample (2-D or more), got shape {X.shape}.",
            problem="bad_shape",
            column="X",
        )
    if y.ndim != 1:
        raise DatasetError(f"Array 'y' must be 1-D, got shape {y.shape}.", problem="bad_shape", column="y")
    if X.shape[0] == 0:
        raise DatasetError("The dataset has no rows.", problem="empty")
    X = X.reshape(X.shape[0], -1).astype(np.float64)
    return build_dataset(X, y, task=task, feature_names=None, name=name, target_name="y")
