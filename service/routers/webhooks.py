"""Webhooks: the tenant's signing secret, its registered endpoints, and each job's deliveries.

The signing secret is per tenant and shown once, in the response that creates it (``POST
/v1/webhooks/secret``, which also rotates it, or the first endpoint registration). Every
delivery to a job's ``notify_url`` or to an endpoint is signed with it
(``lipspline_platform/webhooks/signing.py``). Deliveries are sent by dispatcher threads,
never in a request; ``GET /v1/jobs/{id}/deliveries`` shows a job's, with every attempt, and
``GET /v1/webhooks/deliveries`` all of the tenant's (sweep and registry events included).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from api_schemas.http import (
    DeliveryAttemptOut,
    DeliveryList,
    DeliveryOut,
    DeliveryPage,
    WebhookEndpointCreate,
    WebhookEndpointList,
    WebhookEndpointOut,
    WebhookSecretOut,
)
from api_schemas.timestamps import utcnow
from lipspline_platform.db.ids import new_id
from lipspline_platform.db.tables import (
    JobRow,
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
    WebhookSecretRow,
)
from lipspline_platform.settings import Settings
from lipspline_platform.webhooks import secret_store
from lipspline_platform.webhooks.outbox import PENDING
from lipspline_platform.webhooks.signing import new_secret
from lipspline_platform.webhooks.targets import RefusedTargetError, check_target
from service.deps import AppSettings, DbSession, ReadTenant, TrainTenant
from service.openapi_docs import problems
from service.ownership import owned
from service.pagination import LINK_HEADER, Page, newest_first
from service.problems import invalid_field

router = APIRouter()
TAGS: list[str | object] = ["webhooks"]


def _checked_url(field: str, url: str, settings: Settings) -> str:
    try:
        check_target(url, allow_private=settings.webhook_allow_private)
    except RefusedTargetError as exc:
        raise invalid_field(field, str(exc)) from None
    return url


def check_notify_url(session: Session, url: str, tenant: str, settings: Settings) -> None:
    """422 unless ``url`` may receive webhooks and the tenant has a secret to sign them with."""
    _checked_url("notify_url", url, settings)
    if session.get(WebhookSecretRow, tenant) is None:
        raise invalid_field(
            "notify_url", "webhooks are signed with the tenant's secret, and it has none yet: POST /v1/webhooks/secret"
        )


def _set_secret(session: Session, settings: Settings, tenant: str) -> WebhookSecretOut:
    """A new secret for ``tenant``, stored sealed (``secret_store``): the plain value exists only in this answer."""
    secret, now = new_secret(), utcnow()
    sealed = secret_store.seal(settings, tenant, secret)
    row = session.get(WebhookSecretRow, tenant, with_for_update=True)
    if row is None:
        session.add(WebhookSecretRow(tenant_id=tenant, secret=sealed, created_at=now))
    else:
        row.secret, row.created_at = sealed, now
    session.flush()
    return WebhookSecretOut(secret=secret, created_at=now)


@router.post("/v1/webhooks/secret", status_code=201, response_model=WebhookSecretOut, tags=TAGS)
def rotate_webhook_secret(session: DbSession, settings: AppSettings, tenant: TrainTenant) -> WebhookSecretOut:
    """Create the tenant's webhook signing secret, or replace it: shown in this response only, stored sealed."""
    return _set_secret(session, settings, tenant)


@router.post("/v1/webhooks", status_code=201, response_model=WebhookEndpointOut, tags=TAGS)
def register_webhook(
    spec: WebhookEndpointCreate, session: DbSession, settings: AppSettings, tenant: TrainTenant, response: Response
) -> WebhookEndpointOut:
    """Register a URL that receives the tenant's events: every job's final event, every sweep's end
    (``sweep.finished``, ``sweep.cancelled``), every registry version created and alias moved
    (``registry.version_created``, ``registry.alias_moved``); payloads: ``api_schemas/webhook_events.py``."""
    url = _checked_url("url", spec.url, settings)
    created_secret = None if session.get(WebhookSecretRow, tenant) else _set_secret(session, settings, tenant).secret
    row = WebhookEndpointRow(id=new_id(), tenant_id=tenant, url=url, created_at=utcnow())
    session.add(row)
    session.flush()
    response.headers["Location"] = f"/v1/webhooks/{row.id}"
    return WebhookEndpointOut(id=row.id, url=row.url, created_at=row.created_at, secret=created_secret)


@router.get("/v1/webhooks", response_model=WebhookEndpointList, responses={200: LINK_HEADER}, tags=TAGS)
def list_webhooks(
    session: DbSession,
    tenant: ReadTenant,
    page: Page,
) -> WebhookEndpointList:
    """The tenant's registered endpoints, newest first, a page at a time (``next_cursor``)."""
    query = select(WebhookEndpointRow).where(WebhookEndpointRow.tenant_id == tenant)
    found = newest_first(session, query, page, WebhookEndpointRow)
    return WebhookEndpointList(items=[WebhookEndpointOut(id=r.id, url=r.url, created_at=r.created_at)
                                      for r in found.rows], next_cursor=found.next_cursor)  # fmt: skip


@router.delete("/v1/webhooks/{endpoint_id}", status_code=204, responses=problems(404), tags=TAGS)
def delete_webhook(endpoint_id: str, session: DbSession, tenant: TrainTenant) -> Response:
    """Stop sending to this endpoint (deliveries already recorded keep their history)."""
    session.delete(owned(session, WebhookEndpointRow, endpoint_id, tenant, "webhook"))
    return Response(status_code=204)


@router.get("/v1/jobs/{job_id}/deliveries", operation_id="list_job_deliveries", response_model=DeliveryList,
            responses=problems(404), tags=["jobs"])  # fmt: skip
def job_deliveries(job_id: str, session: DbSession, tenant: ReadTenant) -> DeliveryList:
    """Every webhook delivery of the job's final event, with every attempt and its answer."""
    owned(session, JobRow, job_id, tenant, "job")
    deliveries = session.scalars(
        select(WebhookDeliveryRow).where(WebhookDeliveryRow.job_id == job_id).order_by(WebhookDeliveryRow.created_at)
    ).all()
    return DeliveryList(items=_deliveries_out(session, deliveries))


def _deliveries_out(session: Session, deliveries: list[WebhookDeliveryRow]) -> list[DeliveryOut]:
    """The deliveries with every attempt of each: one query for all their attempts."""
    attempts: dict[str, list[DeliveryAttemptOut]] = {d.id: [] for d in deliveries}
    if deliveries:
        rows = session.scalars(
            select(WebhookAttemptRow)
            .where(WebhookAttemptRow.delivery_id.in_(list(attempts)))
            .order_by(WebhookAttemptRow.attempt)
        )
        for a in rows:
            attempts[a.delivery_id].append(DeliveryAttemptOut.model_validate(a, from_attributes=True))
    return [
        DeliveryOut(id=d.id, url=d.url, event=d.event, job_id=d.job_id, state=d.state, attempts=attempts[d.id],
                    next_attempt_at=d.next_attempt_at if d.state == PENDING else None,
                    created_at=d.created_at, finished_at=d.finished_at)
        for d in deliveries
    ]  # fmt: skip


@router.get("/v1/webhooks/deliveries", operation_id="list_webhook_deliveries", response_model=DeliveryPage,
            responses={200: LINK_HEADER}, tags=TAGS)  # fmt: skip
def webhook_deliveries(
    session: DbSession,
    tenant: ReadTenant,
    page: Page,
    event: Annotated[str | None, Query(max_length=40, description="only this event, e.g. `sweep.finished`")] = None,
) -> DeliveryPage:
    """Every delivery of the tenant's events (jobs, sweeps, registry), newest first, with every attempt."""
    query = select(WebhookDeliveryRow).where(WebhookDeliveryRow.tenant_id == tenant)
    if event is not None:
        query = query.where(WebhookDeliveryRow.event == event)
    found = newest_first(session, query, page, WebhookDeliveryRow)
    return DeliveryPage(items=_deliveries_out(session, found.rows), next_cursor=found.next_cursor)
