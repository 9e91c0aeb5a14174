"""Targets: guessing the task, and turning raw labels into one canonical form.

The same labels arrive as CSV text, npz integers of any width, Parquet booleans or JSON
numbers. They are normalised here to int64, float64 or str so that one table sent in any
format compares equal, hashes equal and trains the same model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lipspline.data.dataset import Task
from lipspline.data.errors import DatasetError, first_nonfinite, nonfinite_problem

#: Numeric targets with at most this many distinct whole-number values are treated as
#: class labels when the task is not given explicitly.
MAX_CLASSIFICATION_LEVELS = 20

# Whole-number float labels are converted to int64 only while they are exactly
# representable, so the conversion can never change a label's value.
_MAX_EXACT_FLOAT_INT = 2.0**53


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


def is_number(value: Any) -> bool:
    """Python and numpy scalars alike: JSON gives the former, numpy arrays the latter."""
    return isinstance(value, bool | int | float | np.bool_ | np.integer | np.floating)


def normalize_labels(targets: Any, target_name: str) -> np.ndarray:
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
        elif all(is_number(v) for v in values):
            y = np.array(values)
        else:
            # labels must be all text or all numbers; the first value of another kind is at fault
            first_is_text = isinstance(values[0], str)
            bad = next((i for i, v in enumerate(values) if isinstance(v, str) != first_is_text or
                        not (isinstance(v, str) or is_number(v))), 0)
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


def prepare_targets(y: np.ndarray, task: Task, target_name: str) -> tuple[np.ndarray, list | None]:
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
        where = first_nonfinite(y)
        if where is not None:
            row = where[0]
            problem, what = nonfinite_problem(float(y[row]))
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


def parse_label_column(cells: list[str]) -> np.ndarray:
    """Give a text target column the narrowest type that fits every cell: int, float, else text.

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
