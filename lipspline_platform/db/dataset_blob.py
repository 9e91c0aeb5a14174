"""Dataset arrays <-> bytes for the ``datasets.content`` column (npz, never pickle)."""

from __future__ import annotations

import io

import numpy as np

from lipspline.data import Dataset
from lipspline_platform.db.tables import DatasetRow


def dataset_to_bytes(dataset: Dataset) -> bytes:
    y = dataset.y
    if y.dtype == object:  # labels are stored as fixed-width unicode, which needs no pickle
        y = y.astype(str)
    buffer = io.BytesIO()
    np.savez(buffer, X=np.ascontiguousarray(dataset.X, dtype=np.float64), y=y)
    return buffer.getvalue()


def dataset_from_row(row: DatasetRow) -> Dataset:
    with np.load(io.BytesIO(row.content), allow_pickle=False) as archive:
        X, y = archive["X"], archive["y"]
    return Dataset(
        X=X,
        y=y,
        task=row.task,  # type: ignore[arg-type]
        feature_names=list(row.feature_names),
        classes=None if row.classes is None else list(row.classes),
        name=row.name,
    )
