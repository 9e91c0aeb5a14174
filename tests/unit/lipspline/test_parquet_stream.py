"""Parquet datasets streamed where they lie (issue 30): footer facts, column checks by name, one
statistics pass equal to the in-memory numbers, a stable validation hash, epochs that visit every
training row once within a bounded buffer, and a fingerprint that notices a changed object."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import torch

from api_schemas import TrainingConfig
from lipspline.data import DatasetError, from_arrays
from lipspline.data.parquet_stream import (
    DataChangedError,
    ParquetStream,
    check_columns,
    compute_statistics,
    describe_objects,
    validation_mask,
    verify_unchanged,
)
from lipspline.training.data import StreamedData
from lipspline.training.loop import fit

LOCAL = pafs.LocalFileSystem()


def _write(path: Path, X: np.ndarray, y: np.ndarray, row_group_size: int = 100, **extra: object) -> str:
    columns = {f"f{j}": X[:, j] for j in range(X.shape[1])}
    table = pa.table({**columns, "label": y, **extra})
    pq.write_table(table, path, row_group_size=row_group_size)
    return str(path)


def _blobs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, 3)) + 2.5 * y[:, None]
    return X.astype(np.float32), y


def _stream(tmp_path: Path, n_files: int = 3, rows: int = 350, **kwargs: object) -> tuple[ParquetStream, np.ndarray]:
    rng = np.random.default_rng(0)
    paths, parts = [], []
    for k in range(n_files):
        X, y = _blobs(rng, rows)
        paths.append(_write(tmp_path / f"part-{k}.parquet", X, y))
        parts.append((X, y))
    objects, schema = describe_objects(LOCAL, paths)
    features = check_columns(schema, "label", None)
    stats = compute_statistics(LOCAL, objects, features, "label", None)
    stream = ParquetStream(LOCAL, objects, features, "label", stats, validation_split=0.2, seed=7, **kwargs)
    X_all = np.concatenate([p[0] for p in parts]).astype(np.float64)
    return stream, X_all


def test_statistics_of_one_pass_equal_the_in_memory_moments(tmp_path: Path) -> None:
    stream, X = _stream(tmp_path)
    stats = stream.statistics
    assert stats.n_rows == X.shape[0] == sum(o.n_rows for o in stream.objects)
    np.testing.assert_allclose(stats.mean, X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, X.std(axis=0), rtol=1e-10)
    np.testing.assert_array_equal(stats.minimum, X.min(axis=0))
    assert stats.task == "classification" and stats.classes == [0, 1] and sum(stats.class_counts) == X.shape[0]


def test_an_epoch_visits_every_training_row_once_and_never_a_validation_row(tmp_path: Path) -> None:
    stream, X = _stream(tmp_path, buffer_rows=128)
    is_validation = validation_mask(np.arange(X.shape[0]), 0.2, seed=7)
    seen = np.concatenate([xb for xb, _ in stream.training_batches(batch_size=32, seed=1)])
    assert seen.shape[0] == int((~is_validation).sum())
    assert _as_rows(seen) == _as_rows(X[~is_validation])
    again = np.concatenate([xb for xb, _ in stream.training_batches(batch_size=32, seed=1)])
    other = np.concatenate([xb for xb, _ in stream.training_batches(batch_size=32, seed=2)])
    assert np.array_equal(seen, again) and not np.array_equal(seen, other)


def _as_rows(a: np.ndarray) -> list[tuple]:
    return sorted(map(tuple, np.round(a.astype(np.float64), 5)))


def test_the_validation_hash_is_stable_and_near_its_fraction() -> None:
    rows = np.arange(200_000)
    mask = validation_mask(rows, 0.1, seed=3)
    assert abs(mask.mean() - 0.1) < 0.005
    assert np.array_equal(mask[1000:2000], validation_mask(rows[1000:2000], 0.1, seed=3))
    assert not np.array_equal(mask, validation_mask(rows, 0.1, seed=4))


def test_columns_are_checked_by_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X, y = _blobs(rng, 50)
    path = _write(tmp_path / "d.parquet", X, y, note=np.array(["x"] * 50))
    _, schema = describe_objects(LOCAL, [path])
    with pytest.raises(DatasetError) as error:
        check_columns(schema, "label", None)
    assert error.value.column == "note" and error.value.problem == "non_numeric"
    assert check_columns(schema, "label", ["f0", "f2"]) == ["f0", "f2"]
    with pytest.raises(DatasetError) as missing:
        check_columns(schema, "label", ["f0", "nope"])
    assert missing.value.column == "nope"
    with pytest.raises(DatasetError) as no_target:
        check_columns(schema, "target", None)
    assert no_target.value.column == "target"


def test_a_file_that_is_not_parquet_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "notes.parquet"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="notes.parquet") as error:
        describe_objects(LOCAL, [str(path)])
    assert error.value.problem == "bad_parquet"


def test_a_non_finite_value_is_named_by_global_row_and_column(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    X, y = _blobs(rng, 300)
    X[250, 1] = np.nan
    paths = [_write(tmp_path / "a.parquet", *_blobs(rng, 120)), _write(tmp_path / "b.parquet", X, y)]
    objects, schema = describe_objects(LOCAL, paths)
    with pytest.raises(DatasetError) as error:
        compute_statistics(LOCAL, objects, check_columns(schema, "label", None), "label", None)
    assert (error.value.row, error.value.column, error.value.problem) == (370, "f1", "nan")


def test_a_rewritten_or_deleted_object_is_named(tmp_path: Path) -> None:
    stream, _ = _stream(tmp_path, n_files=2)
    verify_unchanged(LOCAL, stream.objects)
    rng = np.random.default_rng(9)
    _write(tmp_path / "part-1.parquet", *_blobs(rng, 350))
    with pytest.raises(DataChangedError) as changed:
        verify_unchanged(LOCAL, stream.objects)
    assert changed.value.path.endswith("part-1.parquet")
    (tmp_path / "part-0.parquet").unlink()
    with pytest.raises(DataChangedError, match="no longer exists"):
        verify_unchanged(LOCAL, stream.objects)


def test_training_on_the_stream_learns_like_training_in_memory(tmp_path: Path) -> None:
    stream, X = _stream(tmp_path, n_files=2, rows=600, buffer_rows=256)
    config = TrainingConfig.model_validate({
        "architecture": {"hidden": [8], "activation": "deepspline"},
        "training": {"epochs": 4, "batch_size": 32, "lr": 0.02, "seed": 0, "validation_split": 0.2},
    })
    streamed = fit(StreamedData(stream), config)
    labels = np.concatenate([pq.read_table(o.path)["label"].to_numpy() for o in stream.objects])
    in_memory = fit(from_arrays(X.tolist(), labels.tolist()), config)
    assert streamed.model.metrics["validation"]["accuracy"] > 0.9
    gap = streamed.model.metrics["validation"]["accuracy"] - in_memory.model.metrics["validation"]["accuracy"]
    assert abs(gap) < 0.08
    again = fit(StreamedData(stream), config)  # a seed makes a streamed run repeatable too
    for a, b in zip(streamed.model.network.parameters(), again.model.network.parameters(), strict=True):
        assert torch.equal(a, b)
