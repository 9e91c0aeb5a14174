"""Dataset arrays <-> npz bytes (never pickle), kept in ``datasets.content`` or the artifact store."""

from __future__ import annotations

import io

import numpy as np

from lipspline.data import Dataset
from lipspline_platform.db.tables import DatasetRow
from lipspline_platform.settings import Settings
from lipspline_platform.storage import artifacts


def dataset_to_bytes(dataset: Dataset) -> bytes:
    y = dataset.y
    if y.dtype == object:  # labels are stored as fixed-width unicode, which needs no pickle
        y = y.astype(str)
    buffer = io.BytesIO()
    np.savez(buffer, X=np.ascontiguousarray(dataset.X, dtype=np.float64), y=y)
    return buffer.getvalue()


def dataset_from_row(row: DatasetRow, settings: Settings) -> Dataset:
    """An uploaded dataset whole, its npz read from the row or from the artifact store."""
    content = artifacts.read(settings, row.content, row.content_uri)
    with np.load(io.BytesIO(content), allow_pickle=False) as archive:
        X, y = archive["X"], archive["y"]
    return Dataset(
        X=X,
        y=y,
        task=row.task,  # type: ignore[arg-type]
        feature_names=list(row.feature_names),
        classes=None if row.classes is None else list(row.classes),
        name=row.name,
    )
