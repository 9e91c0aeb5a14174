"""The checks every upload passes, whatever its format.

All parsers end in :func:`build_dataset`, so a limit or invariant added there holds for
every entry point at once; :func:`open_upload` is the matching first step, run before a
parser reads a single byte of the payload.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lipspline.data.dataset import TASKS, Dataset, Task
from lipspline.data.errors import DatasetError, first_nonfinite, fmt_column, nonfinite_problem
from lipspline.data.labels import infer_task, normalize_labels, prepare_targets

#: Upper bound on the decoded size of an upload. Compressed formats are checked against
#: their *declared* decompressed size before anything is inflated (zip-bomb guard).
DEFAULT_MAX_BYTES = 512 * 2**20


def check_task(task: str | None) -> None:
    if task is not None and task not in TASKS:
        raise DatasetError(f"Unknown task {task!r}; expected one of {list(TASKS)}.", problem="bad_task")


def open_upload(data: bytes, task: str | None, max_bytes: int) -> None:
    """Cheap checks before parsing, so a bad request costs nothing to refuse."""
    check_task(task)
    if len(data) > max_bytes:
        raise DatasetError(f"The file is {len(data)} bytes; the limit is {max_bytes}.", problem="too_large")


def default_feature_names(n_features: int) -> list[str]:
    # 1-based like the paper's x1, x2, so make_circle's names match the defaults.
    return [f"x{j + 1}" for j in range(n_features)]


def check_feature_names(names: Sequence[Any], n_features: int) -> list[str]:
    """Names must be unique and non-blank: they key model inputs and error messages."""
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


def build_dataset(
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
    check_task(task)
    n, d = X.shape
    if n == 0:
        raise DatasetError("The dataset has no rows.", problem="empty")
    if d == 0:
        raise DatasetError("The dataset has no feature columns.", problem="no_features")
    names = check_feature_names(feature_names, d) if feature_names is not None else default_feature_names(d)
    where = first_nonfinite(X)
    if where is not None:
        row, col = where
        problem, what = nonfinite_problem(float(X[row, col]))
        raise DatasetError(
            f"Value {what} in row {row}, {fmt_column(names[col])}.", problem=problem, row=row, column=names[col]
        )
    y = normalize_labels(targets, target_name)
    if y.shape[0] != n:
        raise DatasetError(
            f"There are {n} input rows but {y.shape[0]} targets.", problem="length_mismatch", column=target_name
        )
    resolved: Task = task if task is not None else infer_task(y)
    y, classes = prepare_targets(y, resolved, target_name)
    X = np.array(X, dtype=np.float64, order="C")  # always a private copy
    y = np.array(y)
    X.setflags(write=False)
    y.setflags(write=False)
    return Dataset(X=X, y=y, task=resolved, feature_names=names, classes=classes, name=name)
