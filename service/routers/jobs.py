"""``/v1/jobs``: submit (202), status, per-epoch metrics, cancel, list.

The rows are the platform's: ``lipspline_platform/jobs/queries.py`` reads them, ``lifecycle.py`` changes them;
this module parses, checks limits and quotas, calls and answers.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from api_schemas import TERMINAL_STATES, JobStatus
from api_schemas.http import JobAccepted, JobCreate, JobList, JobMetrics, JobOut, LabelsPatch
from lipspline_platform import datasets, registry
from lipspline_platform.db.engine import Session, session_scope
from lipspline_platform.db.ids import new_id
from lipspline_platform.db.tables import JobRow
from lipspline_platform.jobs import lifecycle
from lipspline_platform.jobs import queries as jobs
from lipspline_platform.jobs.queue import queue_for_device, send_job
from lipspline_platform.observability import structured_logging
from lipspline_platform.settings import Settings
from lipspline_platform.webhooks import endpoints
from service import labels, quotas
from service.http.idempotency import IdempotencyKey, IdempotentRequest, fingerprint
from service.http.limits import check_network
from service.http.openapi_docs import created_headers, problems
from service.http.pagination import LINK_HEADER, Page, paged
from service.http.problems import ProblemError, invalid_field
from service.security.deps import AppSettings, DbSession, ReadTenant, TrainTenant
from service.security.ownership import found

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
SUBMIT_ROUTE = "POST /v1/jobs"
#: the 202's Retry-After: a queued job is rarely worth asking about sooner (or follow /events instead)
POLL_AFTER_S = 1


def to_out(row: JobRow) -> JobOut:
    return JobOut.model_validate(row, from_attributes=True)


def _get(session: Session, job_id: str, tenant: str, *, lock: bool = False) -> JobRow:
    return found(jobs.find(session, tenant, job_id, lock=lock), "job", job_id)


@router.post(
    "",
    status_code=202,
    response_model=JobAccepted,
    responses={
        202: created_headers("job", accepted=True),
        **problems(
            (404, "unknown dataset_id (or another tenant's), or register_as names no registered model"),
            (409, "Idempotency-Key in use by a request still in flight"),
            (403, "a tenant quota would be exceeded: `max_models` or `max_stored_bytes` (`quota-exceeded`)"),
            (422, "invalid config, a limit exceeded, or an Idempotency-Key reused with another body"),
            (429, "the request rate of the key, or the tenant's `max_active_jobs` quota (`quota-exceeded`)"),
            (503, "the job broker is unreachable (nothing is stored)"),
        ),
    },
)
def submit_job(
    spec: JobCreate,
    settings: AppSettings,
    tenant: TrainTenant,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Validate the config, record the job as queued, hand its id to a worker; returns at once."""
    idem = IdempotentRequest(settings.resolved_database_url, tenant, SUBMIT_ROUTE, idempotency_key)
    request_fingerprint = fingerprint(spec.model_dump(mode="json", by_alias=True))
    return idem.respond(request_fingerprint, lambda: _submit(spec, settings, tenant, idem))


def _submit(spec: JobCreate, settings: Settings, tenant: str, idem: IdempotentRequest) -> Response:
    queue = queue_for_device(spec.config.device)
    job_id = new_id()
    body = JobAccepted(id=job_id, status=JobStatus.queued).model_dump(mode="json")
    headers = {"Location": f"/v1/jobs/{job_id}", "Retry-After": str(POLL_AFTER_S)}
    with session_scope(settings.resolved_database_url) as session:
        dataset = datasets.of_tenant(session, tenant, spec.dataset_id)
        if dataset is None:
            raise ProblemError(
                404,
                "Not Found",
                f"dataset_id: dataset {spec.dataset_id!r} does not exist",
                kind="not-found",
                field="dataset_id",
            )
        check_network(spec.config, dataset, settings)
        if spec.register_as is not None and registry.find_name(session, tenant, spec.register_as) is None:
            detail = f"register_as: registered model {spec.register_as!r} does not exist (POST /v1/registered-models)"
            errors = [{"field": "register_as", "message": "no registered model of that name"}]
            raise ProblemError(404, "Not Found", detail, kind="not-found", field="register_as", errors=errors)
        if spec.notify_url is not None:
            problem = endpoints.notify_url_problem(session, spec.notify_url, tenant, settings)
            if problem is not None:
                raise invalid_field("notify_url", problem)
        quotas.check_new_job(session, tenant, settings)
        # the idempotency record commits with the job row: a crash can never leave one without the other
        idem.finish(202, body, headers, session=session)
        lifecycle.submit(
            session,
            job_id=job_id,
            tenant_id=tenant,
            dataset_id=spec.dataset_id,
            config=spec.config,
            queue=queue,
            register_as=spec.register_as,
            notify_url=spec.notify_url,
            request_id=structured_logging.current_request_id(),
            name=spec.name,
            tags=spec.tags,
            description=spec.description,
        )
        log.info("job %s submitted to queue %s", job_id, queue, extra={"job_id": job_id})
    try:
        send_job(settings, job_id, queue)
    except Exception as exc:
        # The row was committed first so a fast worker always finds it; if the message
        # cannot be sent, remove the row so nothing half-made is left behind.
        lifecycle.withdraw_unsent(settings, job_id)
        idem.release(finished=True)
        raise ProblemError(
            503,
            "Service Unavailable",
            f"the job broker is unreachable: {type(exc).__name__}",
            kind="broker-unavailable",
        ) from exc
    return JSONResponse(body, status_code=202, headers=headers)


@router.get("", response_model=JobList, responses={200: LINK_HEADER})
def list_jobs(
    session: DbSession,
    tenant: ReadTenant,
    page: Page,
    status: Annotated[JobStatus | None, Query(description="only jobs in this state")] = None,
    dataset_id: Annotated[str | None, Query(max_length=64, description="only jobs of this dataset")] = None,
    name: labels.NameFilter = None,
    tag: labels.TagFilter = None,
) -> JobList:
    """The tenant's jobs, newest first, a page at a time (``next_cursor``), filtered."""
    wanted = status.value if status is not None else None
    listed = paged(page, lambda window: jobs.list_jobs(session, tenant, window, status=wanted, dataset_id=dataset_id,
                                                       name=name, tags=tag))
    return JobList(items=[to_out(r) for r in listed.rows], next_cursor=listed.next_cursor)


@router.get("/{job_id}", response_model=JobOut, responses=problems(404))
def get_job(job_id: str, session: DbSession, tenant: ReadTenant) -> JobOut:
    return to_out(_get(session, job_id, tenant))


@router.patch("/{job_id}", operation_id="update_job", response_model=JobOut, responses=labels.PATCH_RESPONSES)
def update_job(job_id: str, body: LabelsPatch, session: DbSession, tenant: TrainTenant) -> JobOut:
    """Rename, retag or redescribe a job (JSON merge semantics: a member left out is unchanged, ``null``
    clears it, ``tags`` replaces the list). Its model keeps the labels it was given when stored."""
    row = _get(session, job_id, tenant, lock=True)
    labels.patch(session, "job", row, body)
    return to_out(row)


@router.get("/{job_id}/metrics", operation_id="get_job_metrics", response_model=JobMetrics, responses=problems(404))
def job_metrics(job_id: str, session: DbSession, tenant: ReadTenant) -> JobMetrics:
    """Per-epoch history: loss terms, train and validation metrics, seconds per epoch."""
    row = _get(session, job_id, tenant)
    return JobMetrics(id=row.id, status=row.status, history=jobs.epoch_reports(session, job_id))


@router.post(
    "/{job_id}/cancel", response_model=JobOut, responses=problems(404, (409, "the job already succeeded or failed"))
)
def cancel_job(job_id: str, session: DbSession, tenant: TrainTenant) -> JobOut:
    """Queued: cancelled at once. Running: the worker stops cooperatively within one epoch."""
    row = _get(session, job_id, tenant, lock=True)
    if row.status in TERMINAL_STATES:
        if row.status == JobStatus.cancelled:
            return to_out(row)
        raise ProblemError(409, "Conflict", f"job {job_id!r} already {row.status}", kind="job-finished")
    return to_out(lifecycle.request_cancel(session, row))
