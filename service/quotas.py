"""Per-tenant quotas: most active jobs, most stored bytes, most models, most running sweeps.

Each quota is the tenant's own (``tenants.quota_*``, set over ``/v1/admin/tenants``) or
else the deployment's default (``LIPSPLINE_QUOTA_*``); unset means unlimited, which is
the default, so nothing changes for a deployment that sets none (``max_running_sweeps``
excepted: 4 by default, since one request can start a sweep of many jobs).

* ``max_active_jobs``: queued + running jobs. Checked when a job is submitted, since the
  API cannot hold back a job already handed to the broker; a queued job counts because
  it will run. Exceeding it is **429** (``Retry-After``): it clears by itself as jobs finish.
* ``max_models``: stored models plus active jobs (each will store one). **403**: it does
  not clear by waiting (models are kept; an admin may raise the quota).
* ``max_stored_bytes``: dataset contents plus model weights. Checked on upload (with the
  new dataset's bytes) and on submit (a job will add a model). **403** as well.
* ``max_running_sweeps``: sweeps still running. **429**: it clears as sweeps end.

A sweep's trials are jobs and count like them. Its creation is refused with the status a
job would get when its whole budget does not fit: ``max_concurrent`` trials at once
against ``max_active_jobs``, every planned trial (each stores a model) against
``max_models``. Later launches take what the quotas admit at that moment
(``lipspline_platform/sweeps.py``; the quota reading is ``lipspline_platform/quotas.py``, since
workers and reconcilers launch trials too).

The checks read the database in the request's transaction. Two requests racing past
the same limit can both pass: a quota bounds use, it is not a lock.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from lipspline_platform.quotas import active_jobs, model_count, stored_bytes, tenant_quota
from lipspline_platform.settings import Settings
from lipspline_platform.sweeps import running_sweep_count
from service.http.metrics import QUOTA_EXCEEDED
from service.http.problems import ProblemError

__all__ = ["check_new_job", "check_new_sweep", "check_storage", "quota_exceeded", "stored_bytes"]

#: seconds a client is asked to wait when its active-jobs (or running-sweeps) quota is full
ACTIVE_JOBS_RETRY_AFTER_S = 30


def quota_exceeded(status: int, quota: str, limit: int, detail: str) -> ProblemError:
    QUOTA_EXCEEDED.labels(quota).inc()
    error = ProblemError(status, "Quota Exceeded", detail, kind="quota-exceeded", quota=quota, quota_value=limit)
    if status == 429:
        error.headers = {"Retry-After": str(ACTIVE_JOBS_RETRY_AFTER_S)}
    return error


def check_storage(session: Session, tenant_id: str, settings: Settings, adding_bytes: int) -> None:
    """403 if storing ``adding_bytes`` more would pass the tenant's ``max_stored_bytes``."""
    limit = tenant_quota(session, tenant_id, "max_stored_bytes", settings)
    if limit is None:
        return
    used = stored_bytes(session, tenant_id)
    if used + adding_bytes > limit:
        detail = f"the tenant stores {used} bytes; {adding_bytes} more would pass its quota of {limit} bytes"
        raise quota_exceeded(403, "max_stored_bytes", limit, detail + " (delete datasets, or ask an admin)")


def _check_jobs(session: Session, tenant_id: str, settings: Settings, at_once: int, models: int, what: str) -> None:
    """``at_once`` more active jobs (429 past ``max_active_jobs``), ``models`` more models (403 past
    ``max_models``) and a model's bytes (403 once ``max_stored_bytes`` is used up), for ``what``."""
    active_limit = tenant_quota(session, tenant_id, "max_active_jobs", settings)
    models_limit = tenant_quota(session, tenant_id, "max_models", settings)
    active = active_jobs(session, tenant_id) if active_limit is not None or models_limit is not None else 0
    if active_limit is not None and active + at_once > active_limit:
        detail = f"the tenant has {active} queued or running jobs, its quota is {active_limit}"
        if at_once > active_limit:  # waiting cannot help: say what to change
            detail += f"; {what} would run {at_once} at once: lower budget.max_concurrent to at most {active_limit}"
        elif at_once == 1:
            detail += "; retry when one finishes"
        else:
            waiting_for = active + at_once - active_limit
            detail += f"; {what} would run {at_once} at once: retry when {waiting_for} have finished"
        raise quota_exceeded(429, "max_active_jobs", active_limit, detail)
    if models_limit is not None:
        stored = model_count(session, tenant_id)
        if stored + active + models > models_limit:
            detail = (f"the tenant has {stored} models and {active} active jobs, its quota is {models_limit} models; "
                      f"{what} would add {models} (an admin may raise it)")
            raise quota_exceeded(403, "max_models", models_limit, detail)
    check_storage(session, tenant_id, settings, 1)  # a job stores a model: there must be room for one more byte


def check_new_job(session: Session, tenant_id: str, settings: Settings) -> None:
    """The quotas a new job must fit: active jobs (429), models (403), stored bytes (403)."""
    _check_jobs(session, tenant_id, settings, 1, 1, "a job")


def check_new_sweep(session: Session, tenant_id: str, settings: Settings, trials: int, at_once: int) -> None:
    """The quotas a new sweep must fit: running sweeps (429), then its whole budget as jobs: ``at_once``
    trials queued or running together (429), ``trials`` models (403), stored bytes (403)."""
    limit = tenant_quota(session, tenant_id, "max_running_sweeps", settings)
    if limit is not None:
        running = running_sweep_count(session, tenant_id)
        if running >= limit:
            detail = (f"the tenant has {running} running sweeps, its quota is {limit}; retry when one ends "
                      "(or cancel one)")
            raise quota_exceeded(429, "max_running_sweeps", limit, detail)
    _check_jobs(session, tenant_id, settings, at_once, trials, f"the sweep ({trials} trials)")
