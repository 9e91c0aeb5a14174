"""The validated dataset every parser produces, and the task it is for.

A :class:`Dataset` is immutable and always valid: training, hashing and storage can trust its
arrays without re-checking them, because the only intended ways to build one (the parsers and
:func:`~lipspline.data.from_arrays`) validate everything first.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, get_args

import numpy as np

from lipspline.data.errors import DatasetError

Task = Literal["classification", "regression"]
TASKS: tuple[str, ...] = get_args(Task)


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
        # Cheap structural checks only: full validation lives in build_dataset, but a
        # hand-built Dataset should still not be silently inconsistent.
        if self.task not in TASKS:
            raise DatasetError(f"Unknown task {self.task!r}; expected one of {TASKS}.", problem="bad_task")
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
