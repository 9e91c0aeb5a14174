"""Datasets registered by reference: what registration records, and how a job reads them back.

Registration (``POST /v1/datasets`` with a ``uri``) resolves the URI (:mod:`object_store`),
reads every object's footer, checks the columns by name, and makes one streaming statistics
pass; the row it yields holds the URI, each object's size, row groups and footer hash, and the
statistics, never the data and never a credential. A job calls :func:`open_stream`, which
first checks that every object is still the one registered (:func:`verify_unchanged`): data
changed underneath a dataset fails the job naming the object, before any epoch.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from api_schemas import TrainingConfig
from api_schemas.dataset_refs import DatasetReference, S3CredentialsIn
from lipspline.data import DatasetError
from lipspline.data.csv_stream import csv_to_parquet
from lipspline.data.npz_stream import npz_to_parquet
from lipspline.data.parquet_stream import (
    ParquetObject,
    ParquetStream,
    StreamStatistics,
    check_columns,
    compute_statistics,
    describe_objects,
    verify_unchanged,
)
from lipspline_platform.db.ids import new_id
from lipspline_platform.db.tables import DatasetRow
from lipspline_platform.settings import Settings
from lipspline_platform.storage import credentials
from lipspline_platform.storage.artifacts import ArtifactStore
from lipspline_platform.storage.object_store import UriRefusedError, filesystem_for, resolve
from lipspline_platform.webhooks.secret_store import SecretKeyError

SOURCE_FORMAT = "parquet-uri"


def fingerprint(objects: list[ParquetObject]) -> str:
    """One hash of every object's path, size and footer: the dataset's ``sha256`` (what it was registered as)."""
    described = [[o.path, o.size, o.footer_sha256] for o in objects]
    return hashlib.sha256(json.dumps(described, separators=(",", ":")).encode()).hexdigest()


def _described(settings: Settings, filesystem: Any, paths: list[str], spec: DatasetReference, **row: Any) -> DatasetRow:
    """The row of a dataset read where it lies: footers, columns checked by name, one statistics pass."""
    objects, schema = describe_objects(filesystem, paths)
    features = check_columns(schema, spec.target, spec.features)
    if len(features) > settings.max_features:
        raise DatasetError(f"{len(features)} features, over the {settings.max_features} allowed.",
                           problem="too_large")
    statistics = compute_statistics(filesystem, objects, features, spec.target, spec.task,
                                    max_classes=settings.max_classes)
    return DatasetRow(
        name=spec.name, task=statistics.task, n_samples=statistics.n_rows, n_features=len(features),
        classes=statistics.classes, feature_names=features, target_name=spec.target, sha256=fingerprint(objects),
        content=None, objects=[asdict(o) for o in objects], statistics=statistics.to_json(), tags=list(spec.tags),
        description=spec.description, **row,
    )


def _tenant_keys(settings: Settings, tenant: str, uri: str) -> S3CredentialsIn | None:
    """The tenant's own S3 keys for ``uri`` (None: the service's); UriRefusedError if they cannot be opened."""
    if urlsplit(uri).scheme.lower() != "s3":
        return None
    try:
        return credentials.s3_keys(settings, tenant)
    except SecretKeyError as exc:
        raise UriRefusedError(f"{uri!r}: the tenant's stored credentials cannot be opened by this service "
                              "(operator: every process needs the same LIPSPLINE_SECRETS_KEY)") from exc


def _filesystem(settings: Settings, row: DatasetRow) -> Any:
    """What reads a registered dataset's objects: with the tenant's keys, unless the objects are the
    service's own (a large upload copied into the artifact store, read with the service's)."""
    uri = row.uri or ""
    keys = None if row.content_uri is not None else _tenant_keys(settings, row.tenant_id, uri)
    return filesystem_for(urlsplit(uri).scheme.lower(), settings, keys)


def describe(settings: Settings, tenant: str, spec: DatasetReference) -> DatasetRow:
    """A new (unsaved) dataset row for ``spec``; UriRefused or DatasetError (naming the column) when it cannot be."""
    found = resolve(spec.uri, settings, _tenant_keys(settings, tenant, spec.uri))
    return _described(settings, found.filesystem, found.paths, spec, id=new_id(), tenant_id=tenant,
                      source_format=SOURCE_FORMAT, uri=spec.uri)


def store_as_parquet(store: ArtifactStore, key: str, source: BinaryIO, source_format: str, *, target: str,
                     max_bytes: int) -> tuple[str, int]:
    """Copy a large upload (a spooled file) under ``key`` in the artifact store as Parquet: (URI, size).

    A Parquet file is copied as it is; a CSV or .npz file is converted first, a block at a time,
    into a temporary Parquet file (``lipspline.data.csv_stream`` / ``npz_stream``: a DatasetError
    naming the row and column when it is bad, and nothing is stored).
    """
    if source_format == "parquet":
        uri, size, _ = store.put_file(key, source)
        return uri, size
    with tempfile.TemporaryDirectory(prefix="lipspline-upload-") as folder:
        converted = Path(folder) / "upload.parquet"
        if source_format == "csv":
            csv_to_parquet(source, converted, target=target)
        else:
            npz_to_parquet(source, converted, max_bytes=max_bytes)
        with converted.open("rb") as parquet:
            uri, size, _ = store.put_file(key, parquet)
    return uri, size


def describe_stored(settings: Settings, tenant: str, dataset_id: str, uri: str, path: str, filesystem: Any,
                    spec: DatasetReference, source_format: str = "parquet") -> DatasetRow:
    """A dataset row for a large upload already in the artifact store at ``uri`` as Parquet
    (``source_format``: what was uploaded, a CSV or .npz file converted on the way).

    Registered as a reference to that object (so a job streams it) and owning it
    (``content_uri``: deleting the dataset deletes the object).
    """
    size = filesystem.get_file_info(path).size
    return _described(settings, filesystem, [path], spec, id=dataset_id, tenant_id=tenant, source_format=source_format,
                      uri=uri, content_uri=uri, content_bytes=size)


def registered_objects(row: DatasetRow) -> list[ParquetObject]:
    return [ParquetObject(o["path"], o["size"], tuple(o["row_groups"]), o["footer_sha256"]) for o in row.objects or []]


def open_stream(settings: Settings, row: DatasetRow, config: TrainingConfig) -> ParquetStream:
    """The dataset's rows for one run; DataChangedError (naming the object) if one changed since registration."""
    assert row.uri is not None and row.statistics is not None
    found_filesystem = _filesystem(settings, row)
    objects = registered_objects(row)
    verify_unchanged(found_filesystem, objects)
    return ParquetStream(
        filesystem=found_filesystem, objects=objects, features=list(row.feature_names), target=row.target_name or "",
        statistics=StreamStatistics.from_json(row.statistics), validation_split=config.training.validation_split,
        seed=config.training.seed, buffer_rows=settings.stream_buffer_rows, sample_rows=settings.stream_sample_rows,
    )



def first_rows(settings: Settings, row: DatasetRow, count: int) -> list[list]:
    """The first ``count`` rows of the first object (features, then the target), for a preview."""
    import pyarrow.parquet as pq

    objects = registered_objects(row)
    filesystem = _filesystem(settings, row)
    verify_unchanged(filesystem, objects[:1])
    columns = [*row.feature_names, row.target_name or ""]
    with filesystem.open_input_file(objects[0].path) as handle:
        batch = next(pq.ParquetFile(handle).iter_batches(batch_size=count, columns=columns), None)
    if batch is None:
        return []
    values = [batch.column(name).to_pylist() for name in columns]
    return [list(cells) for cells in zip(*values, strict=True)]
