"""The tenant quotas a job counts against, read one way for every caller.

The API checks them before it accepts a job or a sweep (``service/quotas.py``, which turns a
refusal into its 429 or 403), and a sweep's later launches check them too
(``lipspline_platform/sweeps.py``), in workers and reconcilers that cannot import the service.
A tenant's own quota (set with the admin API) wins over the deployment's default; None is no limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api_schemas import ACTIVE_STATES
from lipspline_platform.db.tables import DatasetRow, JobRow, ModelRow, TenantRow
from lipspline_platform.settings import Settings

#: the quotas that clear by waiting (a 429 to a client): the others are a 403
CLEARS_BY_WAITING = frozenset({"max_active_jobs"})


def tenant_quota(session: Session, tenant_id: str, name: str, settings: Settings) -> int | None:
    """The tenant's own ``quota_<name>`` (admin API) or else the deployment's default; None: unlimited."""
    tenant = session.get(TenantRow, tenant_id)
    own = getattr(tenant, f"quota_{name}", None) if tenant is not None else None
    return own if own is not None else getattr(settings, f"quota_{name}")


def active_jobs(session: Session, tenant_id: str) -> int:
    active = [s.value for s in ACTIVE_STATES]
    return int(session.scalar(select(func.count()).where(JobRow.tenant_id == tenant_id, JobRow.status.in_(active))))


def model_count(session: Session, tenant_id: str) -> int:
    return int(session.scalar(select(func.count()).where(ModelRow.tenant_id == tenant_id)))


def stored_bytes(session: Session, tenant_id: str) -> int:
    """Dataset contents plus model weights (their recorded sizes, wherever the bytes are kept)."""
    dataset_size = func.coalesce(DatasetRow.content_bytes, func.length(DatasetRow.content))
    model_size = func.coalesce(ModelRow.weights_bytes, func.length(ModelRow.weights))
    datasets = session.scalar(select(func.coalesce(func.sum(dataset_size), 0)).where(DatasetRow.tenant_id == tenant_id))
    models = session.scalar(select(func.coalesce(func.sum(model_size), 0)).where(ModelRow.tenant_id == tenant_id))
    return int(datasets or 0) + int(models or 0)


@dataclass(frozen=True)
class JobRoom:
    """How many more jobs the tenant's quotas admit now, and the quota that binds (None: no limit)."""

    jobs: int | None
    quota: str | None = None
    limit: int | None = None


def job_room(session: Session, tenant_id: str, settings: Settings) -> JobRoom:
    """The room of each quota a new job counts against, the tightest first: ``max_active_jobs``
    (queued + running), ``max_models`` (models + active jobs: each will store one) and
    ``max_stored_bytes`` (a job adds a model: no room once the tenant stores its quota).
    On a tie the quota that waiting does not clear is named, since it decides what a sweep does."""
    limits = {name: tenant_quota(session, tenant_id, name, settings)
              for name in ("max_active_jobs", "max_models", "max_stored_bytes")}
    rooms: list[JobRoom] = []
    counts_active = limits["max_active_jobs"] is not None or limits["max_models"] is not None
    active = active_jobs(session, tenant_id) if counts_active else 0
    if (limit := limits["max_active_jobs"]) is not None:
        rooms.append(JobRoom(max(0, limit - active), "max_active_jobs", limit))
    if (limit := limits["max_models"]) is not None:
        rooms.append(JobRoom(max(0, limit - model_count(session, tenant_id) - active), "max_models", limit))
    if (limit := limits["max_stored_bytes"]) is not None and stored_bytes(session, tenant_id) >= limit:
        rooms.append(JobRoom(0, "max_stored_bytes", limit))
    if not rooms:
        return JobRoom(None)
    return min(rooms, key=lambda room: (room.jobs, room.quota in CLEARS_BY_WAITING))
