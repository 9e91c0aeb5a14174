"""Per-tenant quotas: most active jobs, most stored bytes, most models.

Each quota is the tenant's own (``tenants.quota_*``, set over ``/v1/admin/tenants``) or
else the deployment's default (``LIPSPLINE_QUOTA_*``); unset means unlimited, which is
the default, so nothing changes for a deployment that sets none.

* ``max_active_jobs``: queued + running jobs. Checked when a job is submitted, since the
  API cannot hold back a job already handed to the broker; a queued job counts because
  it will run. Exceeding it is **429** (``Retry-After``): it clears by itself as jobs finish.
* ``max_models``: stored models plus active jobs (each will store one). **403**: it does
  not clear by waiting (models are kept; an admin may raise the quota).
* ``max_stored_bytes``: dataset contents plus model weights. Checked on upload (with the
  new dataset's bytes) and on submit (a job will add a model). **403** as well.

The checks read the database in the request's transaction. Two requests racing past
the same limit can both pass: a quota bounds use, it is not a lock.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api_schemas import ACTIVE_STATES
from lipspline_platform.db.tables import DatasetRow, JobRow, ModelRow, TenantRow
from lipspline_platform.settings import Settings
from service.metrics import QUOTA_EXCEEDED
from service.problems import ProblemError

#: seconds a client is asked to wait when its active-jobs quota is full
ACTIVE_JOBS_RETRY_AFTER_S = 30


def _quota(session: Session, tenant_id: str, name: str, settings: Settings) -> int | None:
    tenant = session.get(TenantRow, tenant_id)
    own = getattr(tenant, f"quota_{name}", None) if tenant is not None else None
    return own if own is not None else getattr(settings, f"quota_{name}")


def quota_exceeded(status: int, quota: str, limit: int, detail: str) -> ProblemError:
    QUOTA_EXCEEDED.labels(quota).inc()
    error = ProblemError(status, "Quota Exceeded", detail, kind="quota-exceeded", quota=quota, quota_value=limit)
    if status == 429:
        error.headers = {"Retry-After": str(ACTIVE_JOBS_RETRY_AFTER_S)}
    return error


def stored_bytes(session: Session, tenant_id: str) -> int:
    datasets = session.scalar(select(func.coalesce(func.sum(func.length(DatasetRow.content)), 0))
                              .where(DatasetRow.tenant_id == tenant_id))  # fmt: skip
    models = session.scalar(select(func.coalesce(func.sum(func.length(ModelRow.weights)), 0))
                            .where(ModelRow.tenant_id == tenant_id))  # fmt: skip
    return int(datasets or 0) + int(models or 0)


def _active_jobs(session: Session, tenant_id: str) -> int:
    active = [s.value for s in ACTIVE_STATES]
    return int(session.scalar(select(func.count()).where(JobRow.tenant_id == tenant_id, JobRow.status.in_(active))))


def check_storage(session: Session, tenant_id: str, settings: Settings, adding_bytes: int) -> None:
    """403 if storing ``adding_bytes`` more would pass the tenant's ``max_stored_bytes``."""
    limit = _quota(session, tenant_id, "max_stored_bytes", settings)
    if limit is None:
        return
    used = stored_bytes(session, tenant_id)
    if used + adding_bytes > limit:
        detail = (f"the tenant stores {used} bytes; {adding_bytes} more would pass its quota of {limit} bytes "
                  "(delete datasets, or ask an admin to raise it)")  # fmt: skip
        detail = f"the tenant stores {used} bytes; {adding_bytes} more would pass its quota of {limit} bytes"
        raise quota_exceeded(403, "max_stored_bytes", limit, detail + " (delete datasets, or ask an admin)")

def check_new_job(session: Session, tenant_id: str, settings: Settings) -> None:
    """The quotas a new job must fit: active jobs (429), models (403), stored bytes (403)."""
    active_limit = _quota(session, tenant_id, "max_active_jobs", settings)
    models_limit = _quota(session, tenant_id, "max_models", settings)
    if active_limit is None and models_limit is None:
        check_storage(session, tenant_id, settings, 1)
        return
    active = _active_jobs(session, tenant_id)
    if active_limit is not None and active >= active_limit:
        raise quota_exceeded(429, "max_active_jobs", active_limit, f"the tenant has {active} queued or running "
                             f"jobs, its quota is {active_limit}; retry when one finishes")  # fmt: skip
    if models_limit is not None:
        models = int(session.scalar(select(func.count()).where(ModelRow.tenant_id == tenant_id)))
        if models + active >= models_limit:
            detail = (f"the tenant has {models} models and {active} active jobs, its quota is {models_limit} "
                      "models (an admin may raise it)")  # fmt: skip
            detail = f"the tenant has {models} models and {active} active jobs, its quota is {models_limit}"
            raise quota_exceeded(403, "max_models", models_limit, detail + " models (an admin may raise it)")
