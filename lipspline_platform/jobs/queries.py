"""A tenant's jobs as the API reads them: one job, a window of the list, its per-epoch history.

What changes a job (submit, cancel, the worker's progress) is ``lifecycle.py``'s; its event
stream is ``job_events.py``'s. Every function here but :func:`is_tenants` runs in the caller's
transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lipspline_platform import labels
from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.ownership import find_owned
from lipspline_platform.db.pagination import Rows, Window, list_owned
from lipspline_platform.db.tables import JobEpochRow, JobRow


def find(session: Session, tenant_id: str, job_id: str, *, lock: bool = False) -> JobRow | None:
    """The tenant's job (locked ``FOR UPDATE`` with ``lock``), or None (unknown, not an id, another tenant's)."""
    return find_owned(session, JobRow, job_id, tenant_id, lock=lock)


def is_tenants(database_url: str, tenant_id: str, job_id: str) -> bool:
    """Whether the job exists and is the tenant's, in a transaction of its own (the event stream's check)."""
    with session_scope(database_url) as session:
        return find(session, tenant_id, job_id) is not None


def list_jobs(
    session: Session, tenant_id: str, window: Window, *, status: str | None = None, dataset_id: str | None = None,
    name: str | None = None, tags: list[str] | None = None,
) -> Rows:
    """One window of the tenant's jobs, newest first, filtered."""
    where: list[Any] = []
    if status is not None:
        where.append(JobRow.status == status)
    if dataset_id is not None:
        where.append(JobRow.dataset_id == dataset_id)
    where += labels.conditions("job", name=name, tags=tags)
    return list_owned(session, JobRow, window, tenant_id=tenant_id, where=where)


def epoch_reports(session: Session, job_id: str) -> list[dict]:
    """The job's per-epoch reports (loss terms, metrics, seconds), in epoch order."""
    query = select(JobEpochRow.report).where(JobEpochRow.job_id == job_id).order_by(JobEpochRow.epoch)
    return list(session.scalars(query))
