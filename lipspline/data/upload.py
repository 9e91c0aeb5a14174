"""Uploads: choose the parser from the file name a client sent.

The file name is client input too: only its extension picks the parser, and only a cleaned
stem of it becomes the dataset's name.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from lipspline.data.arrays import parse_npz
from lipspline.data.dataset import Dataset, Task
from lipspline.data.errors import DatasetError
from lipspline.data.tabular import parse_csv, parse_parquet
from lipspline.data.validation import DEFAULT_MAX_BYTES


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
