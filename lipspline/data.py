"""Dataset parsing, validation, scaling and the synthetic circle task.

Everything a client uploads passes through this module before it reaches a model, so the
guiding rule is: reject bad data early, with an error that says *where* it is bad (row and
column) and a short machine code (:attr:`DatasetError.problem`) that an API layer can map
to a response without parsing English.

Only numpy and the standard library are imported at module level; pyarrow is imported
lazily inside :func:`parse_parquet` so that importing this module stays cheap and works
where pyarrow is missing. No torch: data handling must not depend on the training stack.

All parsers funnel into one validating constructor (:func:`_build_dataset`), so limits such
as a maximum number of rows or features can be added in a single place later.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import PurePosixPath
from typing import Any, Literal, get_args

import numpy as np

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_CLASSIFICATION_LEVELS",
    "Dataset",
    "DatasetError",
    "Scaling",
    "Task",
    "fit_scaling",
    "from_arrays",
    "infer_task",
    "make_circle",
    "parse_csv",
    "parse_npz",
    "parse_parquet",
    "parse_upload",
    "train_validation_split",
]

Task = Literal["classification", "regression"]
_TASKS: tuple[str, ...] = get_args(Task)

#: Upper bound on the decoded size of an upload. Compressed formats are checked against
#: their *declared* decompressed size before anything is inflated (zip-bomb guard).
DEFAULT_MAX_BYTES = 512 * 2**20

#: Numeric targets with at most this many distinct whole-number values are treated as
#: class labels when the task is not given explicitly.
MAX_CLASSIFICATION_LEVELS = 20

# Whole-number float labels are converted to int64 only while they are exactly
# representable, so the conversion can never change a label's value.
_MAX_EXACT_FLOAT_INT = 2.0**53


class DatasetError(ValueError):
    """Bad data supplied by a client.

    Subclasses :class:`ValueError` so generic callers still treat it as bad input, while the
    API layer can read the structured fields instead of parsing the message:

    * ``problem`` -- short machine code, e.g. ``'nan'``, ``'inf'``, ``'ragged_row'``,
      ``'non_numeric'``, ``'missing_value'``, ``'empty'``, ``'no_features'``, ``'single_class'``,
      ``'missing_target'``, ``'duplicate_column'``, ``'bad_header'``, ``'bad_encoding'``,
      ``'bad_csv'``, ``'bad_npz'``, ``'bad_parquet'``, ``'bad_shape'``, ``'length_mismatch'``,
      ``'too_large'``, ``'bad_task'``, ``'unsupported_format'``, ``'bad_scaling'``.
    * ``row`` -- 0-based index of the offending data row (header excluded), or ``None``.
    * ``column`` -- name (or index, when no name exists) of the offending column, or ``None``.

    ``str(err)`` is a human sentence that already names the row/column.
    """

    def __init__(self, message: str, *, problem: str, row: int | None = None, column: str | int | None = None):
        super().__init__(message)
        self.problem = problem
        self.row = row
        self.column = column

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, so every API endpoint reports data errors the same way."""
        return {"problem": self.problem, "message": str(self), "row": self.row, "column": self.column}


def _fmt_column(column: str | int) -> str:
    return f"column {column!r}" if isinstance(column, str) else f"column {column}"


# ---------------------------------------------------------------------------------------------
# Dataset
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Dataset:
    """A validated, immutable dataset.

    Build it through :func:`from_arrays` or a ``parse_*`` function; those guarantee that ``X``
    is finite float64 ``(n_samples, n_features)`` and that ``y`` is canonical (float64 for
    regression; int64, float64 or str labels for classification). ``eq=False`` because numpy
    arrays have no single truth value; compare datasets with :attr:`sha256` instead.
    """

    X: np.ndarray
    y: np.ndarray
    task: Task
    feature_names: list[str]
    classes: list | None
    name: str = "dataset"

    def __post_init__(self) -> None:
        # Cheap structural checks only: full validation lives in _build_dataset, but a
        # hand-built Dataset should still not be silently inconsistent.
        if self.task not in _TASKS:
            raise DatasetError(f"Unknown task {self.task!r}; expected one of {_TASKS}.", problem="bad_task")
        if self.X.ndim != 2 or self.y.ndim != 1 or self.X.shape[0] != self.y.shape[0]:
            raise DatasetError(
                f"X must be 2-D and y 1-D with the same length, got {self.X.shape} and {self.y.shape}.",
                problem="bad_shape",
            )
        if len(self.feature_names) != self.X.shape[1]:
            raise DatasetError(
                f"{len(self.feature_names)} feature names given for {self.X.shape[1]} features.",
                problem="bad_shape",
            )
        if (self.task == "classification") != (self.classes is not None):
            raise DatasetError("classes must be given exactly for classification datasets.", problem="bad_task")

    @property
    def n_samples(self) -> int:
        """Number of rows."""
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Number of input columns."""
        return int(self.X.shape[1])

    def encoded_targets(self) -> np.ndarray:
        """Targets as the model sees them.

        Classification: int64 index of each label in :attr:`classes` (so class ``k`` is logit
        ``k``); regression: float64 ``y``.
        """
        if self.task == "regression":
            return self.y.astype(np.float64, copy=False)
        assert self.classes is not None
        class_array = np.asarray(self.classes, dtype=self.y.dtype)
        index = np.searchsorted(class_array, self.y)
        index = np.clip(index, 0, len(class_array) - 1)
        if not np.array_equal(class_array[index], self.y):
            raise DatasetError("Some labels are not listed in classes.", problem="bad_shape")
        return index.astype(np.int64)

    def content_sha256(self) -> str:
        """Hex SHA-256 of a canonical encoding of (task, X, y).

        The encoding depends only on values, not on the file format they came from, so the same
        table uploaded as CSV, npz, parquet or JSON arrays hashes identically; that lets callers
        deduplicate uploads and tie a trained model to the exact data it saw. Feature names and
        the dataset name are deliberately excluded: renaming does not change the data.
        """
        h = hashlib.sha256()
        h.update(b"lipspline-dataset-v1\0")
        h.update(self.task.encode("ascii") + b"\0")
        h.update(struct.pack("<qq", *self.X.shape))
        # Adding 0.0 maps -0.0 to +0.0, which a CSV round trip may not preserve anyway.
        h.update(np.ascontiguousarray(self.X + 0.0, dtype="<f8").tobytes())
        y = self.y
        if y.dtype.kind in "iu":
            h.update(b"int64\0" + np.ascontiguousarray(y, dtype="<i8").tobytes())
        elif y.dtype.kind == "f":
            h.update(b"float64\0" + np.ascontiguousarray(y + 0.0, dtype="<f8").tobytes())
        else:
            h.update(b"str\0")
            for label in y.tolist():
                encoded = str(label).encode("utf-8")
                h.update(struct.pack("<q", len(encoded)) + encoded)
        return h.hexdigest()

    @cached_property
    def sha256(self) -> str:
        """Cached :meth:`content_sha256` (the dataset is immutable, so it cannot go stale)."""
        return self.content_sha256()


# ---------------------------------------------------------------------------------------------
# Validation core
# ---------------------------------------------------------------------------------------------


def infer_task(y: np.ndarray | Sequence[Any]) -> Task:
    """Guess whether targets are class labels or real values.

    Rule (applied to the raw targets):

    * booleans -> classification;
    * non-numeric labels (strings, mixed objects) -> classification;
    * numeric values that are all finite whole numbers with at most
      :data:`MAX_CLASSIFICATION_LEVELS` (20) distinct values -> classification;
    * anything else (fractions, many levels, NaN/Inf) -> regression.

    The rule is deliberately simple and predictable; callers that know better pass ``task``.
    """
    arr = np.asarray(y)
    kind = arr.dtype.kind
    if kind == "b":
        return "classification"
    if kind not in "iuf":
        return "classification"
    if arr.size == 0:
        return "regression"
    if kind == "f" and not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
        return "regression"
    return "classification" if np.unique(arr).size <= MAX_CLASSIFICATION_LEVELS else "regression"


def _check_task(task: str | None) -> None:
    if task is not None and task not in _TASKS:
        raise DatasetError(f"Unknown task {task!r}; expected one of {list(_TASKS)}.", problem="bad_task")


def _is_number(value: Any) -> bool:
    return isinstance(value, bool | int | float | np.bool_ | np.integer | np.floating)


def _normalize_labels(targets: Any, target_name: str) -> np.ndarray:
    """Turn raw targets into a 1-D array of int64, float64 or str.

    Bools become 0/1 and all integer widths become int64 so that the same labels coming from
    different file formats compare (and hash) equal.
    """
    try:
        y = np.asarray(targets)
    except ValueError as exc:
        raise DatasetError(f"Targets {target_name!r} must be a flat list of values.", problem="bad_shape") from exc
    if y.ndim != 1:
        raise DatasetError(
            f"Targets {target_name!r} must be one-dimensional, got shape {y.shape}.", problem="bad_shape"
        )
    kind = y.dtype.kind
    if kind == "O":
        values = y.tolist()
        for i, value in enumerate(values):
            if value is None:
                raise DatasetError(
                    f"Row {i} has no value in target {target_name!r}.",
                    problem="missing_value",
                    row=i,
                    column=target_name,
                )
        if all(isinstance(v, str) for v in values):
            y = np.array(values, dtype=str)
        elif all(_is_number(v) for v in values):
            y = np.array(values)
        else:
            # labels must be all text or all numbers; the first value of another kind is at fault
            first_is_text = isinstance(values[0], str)
            bad = next((i for i, v in enumerate(values) if isinstance(v, str) != first_is_text or
                        not (isinstance(v, str) or _is_number(v))), 0)  # fmt: skip
            raise DatasetError(
                f"Row {bad} of target {target_name!r} holds {type(values[bad]).__name__!s} where the labels before "
                f"it are {'text' if first_is_text else 'numbers'}; use one kind of label.",
                problem="non_numeric",
                row=bad,
                column=target_name,
            )
        kind = y.dtype.kind
    if kind == "S":
        try:
            y = np.char.decode(y, "utf-8")
        except UnicodeDecodeError as exc:
            raise DatasetError(f"Target {target_name!r} labels are not UTF-8.", problem="bad_encoding") from exc
        kind = y.dtype.kind
    if kind == "b":
        return y.astype(np.int64)
    if kind == "u" and y.size and int(y.max()) > np.iinfo(np.int64).max:
        return y.astype(np.float64)
    if kind in "iu":
        return y.astype(np.int64)
    if kind == "f":
        return y.astype(np.float64)
    if kind == "U":
        return y.astype(str)
    raise DatasetError(f"Target {target_name!r} has unsupported type {y.dtype}.", problem="non_numeric")


def _first_nonfinite(values: np.ndarray) -> tuple[int, ...] | None:
    bad = ~np.isfinite(values)
    if not bad.any():
        return None
    return tuple(int(i) for i in np.argwhere(bad)[0])


def _nonfinite_problem(value: float) -> tuple[str, str]:
    return ("nan", "is NaN") if math.isnan(value) else ("inf", "is infinite")


def _prepare_targets(y: np.ndarray, task: Task, target_name: str) -> tuple[np.ndarray, list | None]:
    """Validate normalized targets for ``task``; return final ``y`` and ``classes``."""
    if task == "regression":
        if y.dtype.kind == "U":
            raise DatasetError(
                f"Row 0 of target {target_name!r} is text ({y[0]!r}); regression needs numbers.",
                problem="non_numeric",
                row=0,
                column=target_name,
            )
        y = y.astype(np.float64)
    if y.dtype.kind == "f":
        where = _first_nonfinite(y)
        if where is not None:
            row = where[0]
            problem, what = _nonfinite_problem(float(y[row]))
            raise DatasetError(
                f"Target {target_name!r} {what} in row {row}.", problem=problem, row=row, column=target_name
            )
    if task == "regression":
        return y, None
    if y.dtype.kind == "U":
        blank = np.char.strip(y) == ""
        if blank.any():
            row = int(np.argmax(blank))
            raise DatasetError(
                f"Row {row} has an empty label in target {target_name!r}.",
                problem="missing_value",
                row=row,
                column=target_name,
            )
    elif y.dtype.kind == "f" and np.all(y == np.round(y)) and np.all(np.abs(y) < _MAX_EXACT_FLOAT_INT):
        # 1.0 and 1 are the same class whatever the file format wrote.
        y = y.astype(np.int64)
    classes = [v.item() for v in np.unique(y)]
    if len(classes) < 2:
        raise DatasetError(
            f"Classification needs at least two classes, but target {target_name!r} only holds {classes!r}.",
            problem="single_class",
            column=target_name,
        )
    return y, classes


def _check_feature_names(names: Sequence[Any], n_features: int) -> list[str]:
    names = [str(n) for n in names]
    if len(names) != n_features:
        raise DatasetError(f"{len(names)} feature names given for {n_features} feature columns.", problem="bad_shape")
    seen: set[str] = set()
    for j, n in enumerate(names):
        if n in seen:
            raise DatasetError(f"Feature name {n!r} appears more than once.", problem="duplicate_column", column=n)
        if not n.strip():
            raise DatasetError(f"Feature {j} has an empty name.", problem="bad_header", column=j)
        seen.add(n)
    return names


def _build_dataset(
    X: np.ndarray,
    targets: Any,
    *,
    task: Task | None,
    feature_names: Sequence[Any] | None,
    name: str,
    target_name: str,
) -> Dataset:
    """Single validating constructor that every entry point ends in.

    ``X`` must already be a 2-D float array; this checks emptiness, finiteness, lengths and the
    targets, then freezes the arrays so the returned dataset really is immutable.
    """
    _check_task(task)
    n, d = X.shape
    if n == 0:
        raise DatasetError("The dataset has no rows.", problem="empty")
    if d == 0:
        raise DatasetError("The dataset has no feature columns.", problem="no_features")
    names = _check_feature_names(feature_names, d) if feature_names is not None else _default_feature_names(d)
    where = _first_nonfinite(X)
    if where is not None:
        row, col = where
        problem, what = _nonfinite_problem(float(X[row, col]))
        raise DatasetError(
            f"Value {what} in row {row}, {_fmt_column(names[col])}.", problem=problem, row=row, column=names[col]
        )
    y = _normalize_labels(targets, target_name)
    if y.shape[0] != n:
        raise DatasetError(
            f"There are {n} input rows but {y.shape[0]} targets.", problem="length_mismatch", column=target_name
        )
    resolved: Task = task if task is not None else infer_task(y)
    y, classes = _prepare_targets(y, resolved, target_name)
    X = np.array(X, dtype=np.float64, order="C")  # always a private copy
    y = np.array(y)
    X.setflags(write=False)
    y.setflags(write=False)
    return Dataset(X=X, y=y, task=resolved, feature_names=names, classes=classes, name=name)


def _default_feature_names(n_features: int) -> list[str]:
    # 1-based like the paper's x1, x2, so make_circle's names match the defaults.
    return [f"x{j + 1}" for j in range(n_features)]


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
            if not _is_number(cell):
                column = names[j] if names is not None else _default_feature_names(width)[j]
                return DatasetError(
                    f"Row {i}, {_fmt_column(column)} holds {cell!r}, which is not a number.",
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
    return _build_dataset(
        arr.astype(np.float64), targets, task=task, feature_names=feature_names, name=name, target_name="y"
    )


# ---------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------


def _decode_text(data: bytes) -> str:
    """Strict UTF-8 (optional BOM): guessing other encodings silently corrupts labels."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"The file is not valid UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8.",
            problem="bad_encoding",
        ) from exc
    if "\x00" in text:
        raise DatasetError("The file contains NUL bytes; it looks binary, not CSV text.", problem="bad_encoding")
    return text


def _parse_label_column(cells: list[str]) -> np.ndarray:
    """Give the target column the narrowest type that fits every cell: int, float, else text.

    That way ``0``/``1`` labels in a CSV equal the int labels of the same data sent as npz.
    """
    try:
        return np.array([int(c) for c in cells], dtype=np.int64)
    except (ValueError, OverflowError):
        pass
    try:
        return np.array([float(c) for c in cells], dtype=np.float64)
    except ValueError:
        return np.array(cells, dtype=str)


def parse_csv(
    data: bytes,
    *,
    target: str,
    task: Task | None = None,
    name: str = "dataset",
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Dataset:
    """Parse a CSV upload with a header row; ``target`` names the label column.

    Blank lines are skipped. Cells are stripped of surrounding whitespace. Feature cells must
    parse as floats; the target may hold text (class labels).
    """
    _check_task(task)
    if len(data) > max_bytes:
        raise DatasetError(f"The file is {len(data)} bytes; the limit is {max_bytes}.", problem="too_large")
    text = _decode_text(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for record in reader:
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            if header is None:
                header = [c.strip() for c in record]
                continue
            rows.append(record)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise DatasetError(
            f"CSV syntax error near line {reader.line_num}: {exc}.", problem="bad_csv", row=len(rows)
        ) from exc
    if header is None:
        raise DatasetError("The CSV file is empty.", problem="empty")
    count = header.count(target)
    if count == 0:
        raise DatasetError(
            f"Target column {target!r} is not in the header (columns: {header}).",
            problem="missing_target",
            column=target,
        )
    if count > 1:
        raise DatasetError(
            f"Target column {target!r} appears {count} times in the header.", problem="duplicate_column", column=target
        )
    for j, col in enumerate(header):
        if not col:
            raise DatasetError(f"Header column {j} has no name.", problem="bad_header", column=j)
    target_index = header.index(target)
    feature_index = [j for j in range(len(header)) if j != target_index]
    feature_names = _check_feature_names([header[j] for j in feature_index], len(feature_index))
    if not rows:
        raise DatasetError("The CSV file has a header but no data rows.", problem="empty")
    if not feature_index:
        raise DatasetError("The CSV file has no feature columns besides the target.", problem="no_features")

    X = np.empty((len(rows), len(feature_index)), dtype=np.float64)
    labels: list[str] = []
    width = len(header)
    for i, record in enumerate(rows):
        if len(record) != width:
            raise DatasetError(
                f"Row {i} (line {lines[i]}) has {len(record)} fields but the header has {width}.",
                problem="ragged_row",
                row=i,
            )
        for k, j in enumerate(feature_index):
            cell = record[j].strip()
            try:
                X[i, k] = float(cell)
            except ValueError:
                if not cell:
                    raise DatasetError(
                        f"Row {i} (line {lines[i]}), {_fmt_column(header[j])} is empty.",
                        problem="missing_value",
                        row=i,
                        column=header[j],
                    ) from None
                raise DatasetError(
                    f"Row {i} (line {lines[i]}), {_fmt_column(header[j])} holds {cell[:40]!r}, which is not a number.",
                    problem="non_numeric",
                    row=i,
                    column=header[j],
                ) from None
        label = record[target_index].strip()
        if not label:
            raise DatasetError(
                f"Row {i} (line {lines[i]}) has an empty target {target!r}.",
                problem="missing_value",
                row=i,
                column=target,
            )
        labels.append(label)
    y = _parse_label_column(labels)
    if task == "regression" and y.dtype.kind == "U":
        bad = next(i for i, c in enumerate(labels) if not _parses_as_float(c))
        raise DatasetError(
            f"Row {bad} (line {lines[bad]}), target {target!r} holds {labels[bad][:40]!r}; regression needs numbers.",
            problem="non_numeric",
            row=bad,
            column=target,
        )
    return _build_dataset(X, y, task=task, feature_names=feature_names, name=name, target_name=target)


def _parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# NPZ
# ---------------------------------------------------------------------------------------------


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype]:
    """Read only the .npy header of a member: shape and dtype, without touching the payload."""
    fmt = np.lib.format
    try:
        with zf.open(info) as fp:
            version = fmt.read_magic(fp)
            if version == (1, 0):
                shape, _fortran, dtype = fmt.read_array_header_1_0(fp)
            elif version in ((2, 0), (3, 0)):
                shape, _fortran, dtype = fmt.read_array_header_2_0(fp)
            else:
                raise ValueError(f"unsupported .npy version {version}")
    except Exception as exc:  # numpy's header parser raises many types (tokenize.TokenError for a cut-off dict)
        raise DatasetError(f"Member {info.filename!r} is not a valid .npy array: {exc}.", problem="bad_npz") from exc
    return tuple(int(s) for s in shape), np.dtype(dtype)


def _preflight_npz(data: bytes, max_bytes: int) -> None:
    """Reject oversized or pickled content before numpy inflates anything.

    A zip bomb is caught by the declared uncompressed size in the zip directory; a tiny
    member whose .npy header declares a gigantic shape is caught by shape x itemsize; object
    dtypes (which would need unpickling) are refused from the header alone.
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DatasetError("The .npz upload is not a zip archive.", problem="bad_npz") from exc
    with zf:
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
        for key in ("X", "y"):
            info = members.get(f"{key}.npy")
            if info is None:
                found = sorted(m.removesuffix(".npy") for m in members)
                raise DatasetError(
                    f"The .npz file needs arrays 'X' and 'y'; {key!r} is missing (found {found}).",
                    problem="bad_npz",
                    column=key,
                )
            shape, dtype = _npy_header(zf, info)
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
    _check_task(task)
    if len(data) > max_bytes:
        raise DatasetError(f"The file is {len(data)} bytes; the limit is {max_bytes}.", problem="too_large")
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
    return _build_dataset(X, y, task=task, feature_names=None, name=name, target_name="y")


# ---------------------------------------------------------------------------------------------
# Parquet
# ---------------------------------------------------------------------------------------------


def parse_parquet(
    data: bytes,
    *,
    target: str,
    task: Task | None = None,
    name: str = "dataset",
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Dataset:
    """Parse a Parquet upload; numeric columns other than ``target`` become features.

    The row-group metadata (declared uncompressed size) is checked before any column is decoded.
    """
    _check_task(task)
    if len(data) > max_bytes:
        raise DatasetError(f"The file is {len(data)} bytes; the limit is {max_bytes}.", problem="too_large")
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pfile = pq.ParquetFile(pa.BufferReader(data))
        meta = pfile.metadata
        # Encodings (dictionary, RLE) can make even the "uncompressed" row-group size far
        # smaller than the decoded table, so also bound the float64 matrix we will build.
        declared = max(
            sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)),
            meta.num_rows * meta.num_columns * 8,
        )
        if declared > max_bytes:
            raise DatasetError(
                f"The Parquet file declares {declared} bytes of data, over the {max_bytes}-byte limit.",
                problem="too_large",
            )
        table = pfile.read()
    except DatasetError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DatasetError(f"Could not read the Parquet file: {exc}.", problem="bad_parquet") from exc

    names = [str(c) for c in table.column_names]
    count = names.count(target)
    if count == 0:
        raise DatasetError(
            f"Target column {target!r} is not in the file (columns: {names}).", problem="missing_target", column=target
        )
    if count > 1:
        raise DatasetError(
            f"Target column {target!r} appears {count} times.", problem="duplicate_column", column=target
        )
    if table.num_rows == 0:
        raise DatasetError("The Parquet file has no rows.", problem="empty")
    feature_names = _check_feature_names([c for c in names if c != target], len(names) - 1)
    if not feature_names:
        raise DatasetError("The Parquet file has no feature columns besides the target.", problem="no_features")

    def first_null(col: Any) -> int:
        return int(np.argmax(col.is_null().to_numpy(zero_copy_only=False)))

    columns = []
    for j, col_name in enumerate(names):
        if j == names.index(target):
            continue
        col = table.column(j)
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type)):
            raise DatasetError(
                f"{_fmt_column(col_name)} has type {col.type}, not a number.", problem="non_numeric", column=col_name
            )
        if col.null_count:
            row = first_null(col)
            raise DatasetError(
                f"Row {row}, {_fmt_column(col_name)} is empty.", problem="missing_value", row=row, column=col_name
            )
        columns.append(np.asarray(col.to_numpy(), dtype=np.float64))
    X = np.column_stack(columns)

    ycol = table.column(target)
    if ycol.null_count:
        row = first_null(ycol)
        raise DatasetError(f"Row {row} has no target {target!r}.", problem="missing_value", row=row, column=target)
    ytype = ycol.type
    if pa.types.is_dictionary(ytype):
        ytype = ytype.value_type
    if pa.types.is_string(ytype) or pa.types.is_large_string(ytype):
        y: np.ndarray = np.array([str(v) for v in ycol.to_pylist()], dtype=str)
    elif pa.types.is_integer(ytype) or pa.types.is_floating(ytype) or pa.types.is_boolean(ytype):
        y = np.asarray(ycol.to_numpy())
    else:
        raise DatasetError(
            f"Target {target!r} has type {ycol.type}, not numbers or text labels.", problem="non_numeric", column=target
        )
    return _build_dataset(X, y, task=task, feature_names=feature_names, name=name, target_name=target)


# ---------------------------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------------------------


def _dataset_name(filename: str) -> str:
    """Base name without extension; client paths (either slash style) are never trusted."""
    base = PurePosixPath(filename.replace("\\", "/")).name
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem = "".join(ch for ch in stem if ch.isprintable()).strip()
    return stem[:100] or "dataset"


def parse_upload(
    filename: str,
    data: bytes,
    *,
    target: str | None,
    task: Task | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Dataset:
    """Dispatch an uploaded file on its extension (``.csv``, ``.npz``, ``.parquet``/``.pq``).

    ``target`` is required for table formats; ``.npz`` always uses its ``y`` array.
    """
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    name = _dataset_name(filename)
    if suffix == ".npz":
        return parse_npz(data, task=task, name=name, max_bytes=max_bytes)
    if suffix in (".csv", ".parquet", ".pq"):
        if not target:
            raise DatasetError(
                f"A target column name is required for {suffix} uploads.", problem="missing_target", column="target"
            )
        parse = parse_csv if suffix == ".csv" else parse_parquet
        return parse(data, target=target, task=task, name=name, max_bytes=max_bytes)
    raise DatasetError(
        f"Unsupported file type {suffix or '(none)'!r}; use .csv, .npz or .parquet.", problem="unsupported_format"
    )


# ---------------------------------------------------------------------------------------------
# Scaling
# ---------------------------------------------------------------------------------------------


def _as_vector(values: Any, key: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"Scaling field {key!r} must be a list of numbers.", problem="bad_scaling") from exc
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        raise DatasetError(f"Scaling field {key!r} must be a flat list of finite numbers.", problem="bad_scaling")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Scaling:
    """Affine maps kept with a model so it works on raw client inputs.

    ``z = (x - input_mean) / input_scale``; for regression the network predicts standardized
    targets and ``y_raw = y_std * target_scale + target_mean``. Storing the maps (rather than
    asking clients to standardize) keeps the served model's contract in raw units. Note the
    model's Lipschitz bound is in standardized units; in raw units it is multiplied by
    ``target_scale / min(input_scale)``.
    """

    input_mean: np.ndarray
    input_scale: np.ndarray
    target_mean: float = 0.0
    target_scale: float = 1.0

    def __post_init__(self) -> None:
        mean = _as_vector(self.input_mean, "input_mean")
        scale = _as_vector(self.input_scale, "input_scale")
        if mean.shape != scale.shape:
            raise DatasetError("input_mean and input_scale must have the same length.", problem="bad_scaling")
        if np.any(scale <= 0):
            raise DatasetError("input_scale must be positive.", problem="bad_scaling")
        if not (math.isfinite(self.target_mean) and math.isfinite(self.target_scale) and self.target_scale > 0):
            raise DatasetError("target_mean must be finite and target_scale positive.", problem="bad_scaling")
        object.__setattr__(self, "input_mean", mean)
        object.__setattr__(self, "input_scale", scale)
        object.__setattr__(self, "target_mean", float(self.target_mean))
        object.__setattr__(self, "target_scale", float(self.target_scale))

    @property
    def n_features(self) -> int:
        """Input dimension these maps were fitted for."""
        return int(self.input_mean.shape[0])

    def transform_inputs(self, X: np.ndarray) -> np.ndarray:
        """Raw inputs -> standardized network inputs."""
        return (np.asarray(X, dtype=np.float64) - self.input_mean) / self.input_scale

    def transform_targets(self, y: np.ndarray) -> np.ndarray:
        """Raw regression targets -> standardized training targets."""
        return (np.asarray(y, dtype=np.float64) - self.target_mean) / self.target_scale

    def inverse_targets(self, y_std: np.ndarray) -> np.ndarray:
        """Standardized network outputs -> raw regression predictions."""
        return np.asarray(y_std, dtype=np.float64) * self.target_scale + self.target_mean

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict; floats are written with full precision by ``json``."""
        return {
            "input_mean": [float(v) for v in self.input_mean],
            "input_scale": [float(v) for v in self.input_scale],
            "target_mean": self.target_mean,
            "target_scale": self.target_scale,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Scaling:
        """Inverse of :meth:`to_json`; validates, since the dict may come from disk or a client."""
        if not isinstance(d, dict):
            raise DatasetError("Scaling must be a JSON object.", problem="bad_scaling")
        try:
            return cls(
                input_mean=d["input_mean"],
                input_scale=d["input_scale"],
                target_mean=float(d.get("target_mean", 0.0)),
                target_scale=float(d.get("target_scale", 1.0)),
            )
        except DatasetError:
            raise
        except KeyError as exc:
            raise DatasetError(f"Scaling is missing field {exc.args[0]!r}.", problem="bad_scaling") from exc
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"Scaling has a malformed field: {exc}.", problem="bad_scaling") from exc

    def to_json_string(self) -> str:
        """Compact JSON text, handy for embedding in model metadata."""
        return json.dumps(self.to_json(), separators=(",", ":"))


def _safe_scale(std: np.ndarray, mean: np.ndarray) -> np.ndarray:
    # A column that is constant up to rounding noise carries no information; dividing by its
    # tiny std would blow rounding noise up to O(1) values, so it gets scale 1.
    tiny = 1e-12 * np.maximum(1.0, np.abs(mean))
    return np.where(std > tiny, std, 1.0)


def fit_scaling(dataset: Dataset, *, isotropic: bool = False) -> Scaling:
    """Per-feature mean/std standardization (and target standardization for regression).

    ``isotropic`` (used by ``one_lipschitz`` training) keeps the served map exactly as
    Lipschitz as the network inside it. Per-feature scales would multiply the constant
    by ``target_scale / min(input_scale)``: a 1-Lipschitz network could serve a map far
    above 1, or (when that ratio is small) be unable to fit a slope-1 target at all.
    So every feature and the regression target share one scale ``s`` (the largest
    feature std), which cancels; a classifier's logits are not scaled, so its inputs use
    ``max(s, 1)``, which can only shrink the constant. Centring never changes it.
    """
    X = dataset.X
    mean = X.mean(axis=0)
    scale = _safe_scale(X.std(axis=0), mean)
    if isotropic:
        common = float(scale.max()) if scale.size else 1.0
        if dataset.task != "regression":
            common = max(common, 1.0)
        scale = np.full_like(scale, common)
        if dataset.task == "regression":
            y = dataset.y.astype(np.float64)
            return Scaling(input_mean=mean, input_scale=scale, target_mean=float(y.mean()), target_scale=common)
    if dataset.task == "regression":
        y = dataset.y.astype(np.float64)
        t_mean = float(y.mean())
        t_scale = float(_safe_scale(np.asarray([y.std()]), np.asarray([t_mean]))[0])
    else:
        t_mean, t_scale = 0.0, 1.0
    return Scaling(input_mean=mean, input_scale=scale, target_mean=t_mean, target_scale=t_scale)


# ---------------------------------------------------------------------------------------------
# Synthetic data and splitting
# ---------------------------------------------------------------------------------------------


def make_circle(n_samples: int = 1000, *, seed: int = 0) -> Dataset:
    """The 2-D circle benchmark (paper 000, eq. 21).

    Points are uniform in ``[-1, 1]^2``; the label is 1 iff ``x1^2 + x2^2 <= 2/pi``. That disc
    has area ``pi * 2/pi = 2``, half the square's area 4, so the classes are balanced.
    ``classes`` is always ``[0, 1]`` (even if a tiny sample misses one) because the task is known.
    """
    if not isinstance(n_samples, int | np.integer) or isinstance(n_samples, bool) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, size=(int(n_samples), 2))
    y = (np.sum(X**2, axis=1) <= 2.0 / np.pi).astype(np.int64)
    X.setflags(write=False)
    y.setflags(write=False)
    return Dataset(X=X, y=y, task="classification", feature_names=["x1", "x2"], classes=[0, 1], name="circle")


def train_validation_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random disjoint (train, validation) index arrays, each sorted, deterministic per seed.

    The validation size is ``round(n * fraction)`` but capped at ``n - 1`` so training always
    gets at least one sample; ``fraction == 0`` gives an empty validation set.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}.")
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}.")
    n_val = min(int(round(n * fraction)), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]).astype(np.int64), np.sort(perm[:n_val]).astype(np.int64)
