"""Parquet datasets read where they lie: schema checks, one statistics pass, a fingerprint,
and training rows streamed row group by row group.

A dataset registered by reference (``s3://bucket/prefix/*.parquet``, ``file:///shared/…``)
is never copied and never held whole. What this module does with it, given a pyarrow
filesystem and the object paths (the platform resolves URIs and credentials):

* :func:`describe_objects` reads each object's footer only: size, row groups, schema, and a
  SHA-256 of the footer bytes. The footer records every column chunk's offsets, sizes and
  statistics, so an object rewritten with other rows gets another footer hash (and usually
  another size): :func:`verify_unchanged` compares both before a job reads anything and
  names the object that changed or disappeared.
* :func:`check_columns` refuses, by name, a column that is missing or not numeric.
* :func:`compute_statistics` is one streaming pass (batches of ``STATS_BATCH_ROWS``):
  per-feature mean and population std (merged per batch with Chan's formula, float64),
  min/max, the class labels and their counts (or the target's moments), and the first
  non-finite or missing value, named by row and column.
* :class:`ParquetStream` yields an epoch's training rows: row groups in an order drawn from
  the epoch's seed, each read in slices, validation rows dropped, the rest shuffled inside a
  buffer of at most ``buffer_rows`` rows. Memory is that buffer plus one slice, whatever
  the dataset's size.

Validation rows are chosen by a hash of the global row index (file order, then row order),
salted with the run's seed: the same rows for every epoch and every resume, with no index
list held anywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lipspline.data.errors import DatasetError
from lipspline.data.labels import MAX_CLASSIFICATION_LEVELS

#: rows decoded at once by the statistics pass and the epoch reader
STATS_BATCH_ROWS = 65_536
#: rows a shuffle buffer holds by default (float32 rows: 8 MiB per feature-million)
DEFAULT_BUFFER_ROWS = 262_144
#: rows read for the training sample and the validation set at job start
DEFAULT_SAMPLE_ROWS = 65_536
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class ParquetObject:
    """One Parquet object of a dataset, as registered."""

    path: str
    size: int
    row_groups: tuple[int, ...]
    footer_sha256: str

    @property
    def n_rows(self) -> int:
        return sum(self.row_groups)


@dataclass(frozen=True)
class StreamStatistics:
    """What one pass over every row recorded (JSON-ready through :meth:`to_json`)."""

    n_rows: int
    mean: list[float]
    std: list[float]
    minimum: list[float]
    maximum: list[float]
    task: str
    classes: list | None = None
    class_counts: list[int] | None = None
    target_mean: float = 0.0
    target_std: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamStatistics:
        return cls(**data)


class DataChangedError(DatasetError):
    """An object of a registered dataset changed or disappeared since registration."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message, problem="data_changed")
        self.path = path


def _footer(handle: Any, size: int, path: str) -> bytes:
    """The footer bytes (metadata and its length) of a Parquet object, checked for the magic."""
    if size < 12:
        raise DatasetError(f"{path} is not a Parquet file ({size} bytes).", problem="bad_parquet", column=None)
    handle.seek(size - 8)
    tail = handle.read(8)
    if tail[4:] != b"PAR1":
        raise DatasetError(f"{path} is not a Parquet file (no PAR1 footer).", problem="bad_parquet")
    length = int.from_bytes(tail[:4], "little")
    if length <= 0 or length > size - 12:
        raise DatasetError(f"{path} has a corrupt Parquet footer.", problem="bad_parquet")
    handle.seek(size - 8 - length)
    return handle.read(length) + tail


def describe_objects(filesystem: Any, paths: Sequence[str]) -> tuple[list[ParquetObject], Any]:
    """Each object's footer facts, and the schema they share (DatasetError naming the object otherwise)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    objects, schema = [], None
    for path in paths:
        try:
            size = int(filesystem.get_file_info(path).size)
            with filesystem.open_input_file(path) as handle:
                footer = _footer(handle, size, path)
                metadata = pq.ParquetFile(handle).metadata
                file_schema = metadata.schema.to_arrow_schema()
        except DatasetError:
            raise
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise DatasetError(f"Could not read {path} as Parquet: {exc}.", problem="bad_parquet") from exc
        if schema is None:
            schema = file_schema
        elif not file_schema.equals(schema):
            raise DatasetError(f"{path} has another schema than {paths[0]}.", problem="bad_parquet")
        row_groups = tuple(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))
        objects.append(ParquetObject(path, size, row_groups, hashlib.sha256(footer).hexdigest()))
    return objects, schema


def check_columns(schema: Any, target: str, features: Sequence[str] | None) -> list[str]:
    """The feature columns (given, or every numeric column but the target), each checked by name."""
    import pyarrow as pa

    names = list(schema.names)
    if target not in names:
        raise DatasetError(f"Target column {target!r} is not in the data.", problem="missing_target", column=target)
    chosen = [n for n in names if n != target] if features is None else list(features)
    if not chosen:
        raise DatasetError("The data has no feature columns.", problem="no_features")
    if len(set(chosen)) != len(chosen):
        raise DatasetError("A feature column is listed twice.", problem="duplicate_column")
    for name in chosen:
        if name not in names:
            raise DatasetError(f"Column {name!r} is not in the data.", problem="missing_column", column=name)
        kind = schema.field(name).type
        if name == target:
            raise DatasetError(f"Column {name!r} is the target.", problem="duplicate_column", column=name)
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            if features is None:
                raise DatasetError(f"Column {name!r} has type {kind}, not a number; list the feature columns "
                                   "to leave it out.", problem="non_numeric", column=name)
            raise DatasetError(f"Column {name!r} has type {kind}, not a number.", problem="non_numeric", column=name)
    target_type = schema.field(target).type
    if not (pa.types.is_integer(target_type) or pa.types.is_floating(target_type) or pa.types.is_string(target_type)
            or pa.types.is_large_string(target_type) or pa.types.is_boolean(target_type)):
        raise DatasetError(f"Target column {target!r} has type {target_type}.", problem="non_numeric", column=target)
    return chosen


def _as_matrix(batch: Any, features: Sequence[str], first_row: int, dtype: type = np.float64) -> np.ndarray:
    """The batch's feature columns as a (rows, features) array; missing values named by row and column."""
    columns = []
    for name in features:
        column = batch.column(name)
        if column.null_count:
            row = first_row + int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))
            raise DatasetError(f"Row {row}, column {name!r}: missing value.", problem="missing_value",
                               row=row, column=name)
        columns.append(column.to_numpy(zero_copy_only=False).astype(dtype, copy=False))
    return np.stack(columns, axis=1)


def _target_values(batch: Any, target: str, first_row: int) -> np.ndarray:
    column = batch.column(target)
    if column.null_count:
        row = first_row + int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))
        raise DatasetError(f"Row {row}, column {target!r}: missing value.", problem="missing_value", row=row,
                           column=target)
    values = column.to_numpy(zero_copy_only=False)
    if values.dtype == bool:
        return values.astype(np.int64)
    if values.dtype.kind == "O":
        return values.astype(str)
    return values


def _first_non_finite(X: np.ndarray, first_row: int, features: Sequence[str]) -> None:
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DatasetError(f"Row {first_row + int(row)}, column {features[col]!r}: {X[row, col]} is not finite.",
                           problem="nan" if np.isnan(X[row, col]) else "inf", row=first_row + int(row),
                           column=features[col])


@dataclass
class _Moments:
    """Running count, mean and sum of squared deviations, merged batch by batch (Chan et al.)."""

    count: int = 0
    mean: np.ndarray | float = 0.0
    m2: np.ndarray | float = 0.0

    def add(self, values: np.ndarray) -> None:
        n = values.shape[0]
        if n == 0:
            return
        batch_mean = values.mean(axis=0)
        batch_m2 = ((values - batch_mean) ** 2).sum(axis=0)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + batch_m2 + delta**2 * (self.count * n / total)
        self.count = total

    @property
    def std(self) -> np.ndarray | float:
        return np.sqrt(self.m2 / max(self.count, 1))


def _iter_batches(filesystem: Any, objects: Sequence[ParquetObject], columns: list[str]) -> Iterator[tuple[int, Any]]:
    """(global index of the first row, record batch) over every object in order."""
    import pyarrow.parquet as pq

    offset = 0
    for obj in objects:
        with filesystem.open_input_file(obj.path) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=STATS_BATCH_ROWS, columns=columns):
                yield offset, batch
                offset += batch.num_rows


def compute_statistics(
    filesystem: Any, objects: Sequence[ParquetObject], features: list[str], target: str, task: str | None,
    max_classes: int = 1000,
) -> StreamStatistics:
    """One pass over every row: moments, ranges, labels; the first bad value named by row and column."""
    inputs, targets = _Moments(), _Moments()
    low = high = None
    counts: dict[Any, int] = {}
    integral = True
    for first_row, batch in _iter_batches(filesystem, objects, [*features, target]):
        X = _as_matrix(batch, features, first_row)
        _first_non_finite(X, first_row, features)
        inputs.add(X)
        low = X.min(axis=0) if low is None else np.minimum(low, X.min(axis=0))
        high = X.max(axis=0) if high is None else np.maximum(high, X.max(axis=0))
        y = _target_values(batch, target, first_row)
        if y.dtype.kind == "f":
            _first_non_finite(y[:, None], first_row, [target])
            integral = integral and bool(np.all(y == np.round(y)))
            targets.add(y.astype(np.float64))
        elif y.dtype.kind in "iu":
            targets.add(y.astype(np.float64))
        if task != "regression" and len(counts) <= max(max_classes, MAX_CLASSIFICATION_LEVELS):
            labels, label_counts = np.unique(y, return_counts=True)
            for label, count in zip(labels.tolist(), label_counts.tolist(), strict=True):
                counts[label] = counts.get(label, 0) + count
    if inputs.count == 0:
        raise DatasetError("The data has no rows.", problem="empty")
    task = task or _infer_task(counts, integral, max_classes)
    statistics = StreamStatistics(
        n_rows=inputs.count, mean=np.asarray(inputs.mean).tolist(), std=np.asarray(inputs.std).tolist(),
        minimum=np.asarray(low).tolist(), maximum=np.asarray(high).tolist(), task=task,
    )
    if task == "regression":
        if targets.count == 0:
            raise DatasetError(f"Target {target!r} is text; regression needs numbers.", problem="non_numeric",
                               column=target)
        return StreamStatistics(**{**asdict(statistics), "target_mean": float(targets.mean),
                                   "target_std": float(targets.std)})
    if len(counts) > max_classes:
        raise DatasetError(f"Target {target!r} has more than {max_classes} classes.", problem="too_many_classes",
                           column=target)
    if len(counts) < 2:
        raise DatasetError(f"Target {target!r} has a single class.", problem="single_class", column=target)
    classes = sorted(counts)
    return StreamStatistics(**{**asdict(statistics), "classes": classes,
                               "class_counts": [counts[c] for c in classes]})


def _infer_task(counts: dict, integral: bool, max_classes: int) -> str:
    """Text or whole-number labels with few levels are classes; anything else is regression."""
    if counts and any(isinstance(label, str) for label in counts):
        return "classification"
    return "classification" if integral and len(counts) <= MAX_CLASSIFICATION_LEVELS else "regression"


def verify_unchanged(filesystem: Any, objects: Sequence[ParquetObject]) -> None:
    """DataChangedError naming the first object that is gone, resized or has another footer."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    for obj in objects:
        try:
            info = filesystem.get_file_info(obj.path)
            if info.type == pafs.FileType.NotFound:
                raise DataChangedError(f"{obj.path} no longer exists (deleted after registration).", path=obj.path)
            if int(info.size) != obj.size:
                raise DataChangedError(f"{obj.path} changed after registration: {info.size} bytes, registered "
                                       f"{obj.size}.", path=obj.path)
            with filesystem.open_input_file(obj.path) as handle:
                footer = _footer(handle, obj.size, obj.path)
        except DataChangedError:
            raise
        except (pa.ArrowException, OSError, DatasetError) as exc:
            raise DataChangedError(f"{obj.path} can no longer be read: {exc}", path=obj.path) from exc
        if hashlib.sha256(footer).hexdigest() != obj.footer_sha256:
            raise DataChangedError(f"{obj.path} changed after registration (its Parquet footer differs).",
                                   path=obj.path)


def validation_mask(row_index: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """True for validation rows: a splitmix64 hash of (row index, seed) below ``fraction`` of 2^64."""
    if fraction <= 0:
        return np.zeros(row_index.shape, dtype=bool)
    with np.errstate(over="ignore"):
        z = row_index.astype(np.uint64) + np.uint64(seed % 2**64) * _GOLDEN + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) < fraction * float(2**53)


@dataclass(frozen=True)
class Sample:
    """Training and validation rows read at job start (raw units, encoded targets)."""

    train_inputs: np.ndarray
    train_targets: np.ndarray
    validation_inputs: np.ndarray
    validation_targets: np.ndarray


@dataclass
class ParquetStream:
    """The rows of a registered Parquet dataset, as one training run reads them (module docstring)."""

    filesystem: Any
    objects: list[ParquetObject]
    features: list[str]
    target: str
    statistics: StreamStatistics
    validation_split: float
    seed: int
    buffer_rows: int = DEFAULT_BUFFER_ROWS
    sample_rows: int = DEFAULT_SAMPLE_ROWS
    _offsets: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self._offsets = list(np.cumsum([0, *[o.n_rows for o in self.objects]])[:-1].tolist())

    @property
    def task(self) -> str:
        return self.statistics.task

    @property
    def classes(self) -> list | None:
        return self.statistics.classes

    @property
    def n_rows(self) -> int:
        return self.statistics.n_rows

    @property
    def n_validation_estimate(self) -> int:
        return min(int(round(self.n_rows * self.validation_split)), self.n_rows - 1)

    def _encode(self, labels: np.ndarray) -> np.ndarray:
        if self.task == "regression":
            return labels.astype(np.float64, copy=False)
        classes = np.asarray(self.classes, dtype=labels.dtype if labels.dtype.kind == "U" else None)
        index = np.clip(np.searchsorted(classes, labels), 0, len(classes) - 1)
        if not np.array_equal(classes[index], labels):
            raise DatasetError("A label is not among the classes recorded at registration: the data changed.",
                               problem="data_changed", column=self.target)
        return index.astype(np.int64)

    def _row_groups(self) -> list[tuple[int, int, int]]:
        """(object index, row group index, global index of its first row) for every row group."""
        groups = []
        for k, obj in enumerate(self.objects):
            start = self._offsets[k]
            for g, rows in enumerate(obj.row_groups):
                groups.append((k, g, start))
                start += rows
        return groups

    def _read_group(self, handle: Any, group: int, first_row: int,
                    dtype: type) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(row indices, X, raw labels) slices of one row group."""
        import pyarrow.parquet as pq

        reader = pq.ParquetFile(handle)
        offset = first_row
        for batch in reader.iter_batches(batch_size=STATS_BATCH_ROWS, row_groups=[group],
                                         columns=[*self.features, self.target]):
            rows = np.arange(offset, offset + batch.num_rows, dtype=np.int64)
            offset += batch.num_rows
            yield rows, _as_matrix(batch, self.features, int(rows[0]), dtype), _target_values(batch, self.target,
                                                                                              int(rows[0]))

    def sample(self) -> Sample:
        """Rows of whole row groups drawn by the seed until ``sample_rows``: split by the validation hash."""
        rng = np.random.default_rng(self.seed)
        groups = self._row_groups()
        train_inputs, train_y, val_X, val_y = [], [], [], []
        taken = 0
        for pick in rng.permutation(len(groups)):
            k, g, first = groups[pick]
            with self.filesystem.open_input_file(self.objects[k].path) as handle:
                for rows, X, labels in self._read_group(handle, g, first, np.float64):
                    is_val = validation_mask(rows, self.validation_split, self.seed)
                    train_inputs.append(X[~is_val])
                    train_y.append(self._encode(labels[~is_val]))
                    val_X.append(X[is_val])
                    val_y.append(self._encode(labels[is_val]))
                    taken += rows.size
            if taken >= self.sample_rows:
                break
        return Sample(np.concatenate(train_inputs), np.concatenate(train_y),
                      np.concatenate(val_X), np.concatenate(val_y))

    def training_batches(self, batch_size: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch of (float32 X, encoded targets) batches, shuffled within ``buffer_rows`` (module docstring)."""
        rng = np.random.default_rng(seed)
        groups = self._row_groups()
        buffer_X: list[np.ndarray] = []
        buffer_y: list[np.ndarray] = []
        held = 0
        for pick in rng.permutation(len(groups)):
            k, g, first = groups[pick]
            with self.filesystem.open_input_file(self.objects[k].path) as handle:
                for rows, X, labels in self._read_group(handle, g, first, np.float32):
                    keep = ~validation_mask(rows, self.validation_split, self.seed)
                    buffer_X.append(X[keep])
                    buffer_y.append(self._encode(labels[keep]))
                    held += int(keep.sum())
                    if held >= self.buffer_rows:
                        X_all, y_all = np.concatenate(buffer_X), np.concatenate(buffer_y)
                        order = rng.permutation(held)
                        whole = (held // batch_size) * batch_size
                        for begin in range(0, whole, batch_size):
                            index = order[begin : begin + batch_size]
                            yield X_all[index], y_all[index]
                        rest = order[whole:]
                        buffer_X, buffer_y, held = [X_all[rest]], [y_all[rest]], rest.size
        if held:
            X_all, y_all = np.concatenate(buffer_X), np.concatenate(buffer_y)
            order = rng.permutation(held)
            for begin in range(0, held, batch_size):
                index = order[begin : begin + batch_size]
                yield X_all[index], y_all[index]
