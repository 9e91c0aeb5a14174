"""A tenant's datasets as the API stores and reads them: upload, lookup, the list, deletion.

An uploaded dataset's rows are the npz of ``db/dataset_blob.py``, kept in the row or, when the
deployment has an artifact store, as an object the row names (written before the row). A dataset
registered by reference (``dataset_refs.py``) holds only what describes the objects where they
lie. Every function here runs in the caller's transaction (``service.security.deps.DbSession``, or the
upload's own ``session_scope``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api_schemas import ACTIVE_STATES
from lipspline.data import Dataset
from lipspline_platform import labels
from lipspline_platform.db.ids import new_id
from lipspline_platform.db.ownership import find_owned
from lipspline_platform.db.pagination import Rows, Window, list_owned
from lipspline_platform.db.tables import DatasetRow, JobRow
from lipspline_platform.settings import Settings
from lipspline_platform.storage import artifacts


# ---- reads ---------------------------------------------------------------------------------------
def find(session: Session, tenant_id: str, dataset_id: str, *, lock: bool = False) -> DatasetRow | None:
    """The tenant's dataset (locked ``FOR UPDATE`` with ``lock``), or None (unknown, not an id, another tenant's)."""
    return find_owned(session, DatasetRow, dataset_id, tenant_id, lock=lock)


def of_tenant(session: Session, tenant_id: str, dataset_id: str) -> DatasetRow | None:
    """The dataset a job names, if it is the tenant's: looked up by the id as given."""
    row = session.get(DatasetRow, dataset_id)
    return row if row is not None and row.tenant_id == tenant_id else None


def list_datasets(
    session: Session, tenant_id: str, window: Window, *, task: str | None = None, name: str | None = None,
    tags: list[str] | None = None,
) -> Rows:
    """One window of the tenant's datasets, newest first, filtered."""
    where: list[Any] = [] if task is None else [DatasetRow.task == task]
    where += labels.conditions("dataset", name=name, tags=tags)
    return list_owned(session, DatasetRow, window, tenant_id=tenant_id, where=where)


def active_job_ids(session: Session, dataset_id: str) -> list[str]:
    """The queued or running jobs that still need the dataset."""
    query = select(JobRow.id).where(JobRow.dataset_id == dataset_id,
                                    JobRow.status.in_([s.value for s in ACTIVE_STATES]))
    return list(session.scalars(query).all())


# ---- writes --------------------------------------------------------------------------------------
def store_uploaded(
    session: Session, settings: Settings, tenant_id: str, dataset: Dataset, content: bytes, *, source_format: str,
    target_name: str | None, tags: Sequence[str], description: str | None,
) -> DatasetRow:
    """Store a parsed, checked upload (``content``: its npz) with its labels; flushed.

    The npz goes to the artifact store when there is one (written before the row, which names it).
    """
    dataset_id, store = new_id(), artifacts.store_for(settings)
    content_uri = store.put(f"datasets/{dataset_id}", content) if store is not None else None
    row = DatasetRow(
        id=dataset_id, tenant_id=tenant_id, name=dataset.name, task=dataset.task, n_samples=dataset.n_samples,
        n_features=dataset.n_features, classes=dataset.classes, feature_names=list(dataset.feature_names),
        target_name=target_name, source_format=source_format, sha256=dataset.sha256,
        content=None if content_uri else content, content_uri=content_uri, content_bytes=len(content),
        description=description,
    )
    return add(session, row, tags)


def add(session: Session, row: DatasetRow, tags: Sequence[str]) -> DatasetRow:
    """Store a new dataset row (an upload's, or a reference's from ``dataset_refs.describe``) with its tags; flushed."""
    labels.set_tags(session, "dataset", row, tags)
    session.add(row)
    session.flush()
    return row


def delete(session: Session, settings: Settings, row: DatasetRow) -> None:
    """Remove the dataset (locked, and needed by no active job: the caller checked), then its stored object.

    The object goes after the row: a failed delete leaves an orphan object, never a dangling row.
    """
    labels.forget(session, "dataset", row.id)
    content_uri = row.content_uri
    session.delete(row)
    session.flush()
    store = artifacts.store_for(settings)
    if content_uri is not None and store is not None:
        store.delete(content_uri)
