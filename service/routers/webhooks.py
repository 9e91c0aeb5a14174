"""Webhooks: the tenant's signing secret, its registered endpoints, and each job's deliveries.

The signing secret is per tenant and shown once, in the response that creates it (``POST
/v1/webhooks/secret``, which also rotates it, or the first endpoint registration). Every
delivery to a job's ``notify_url`` or to an endpoint is signed with it
(``lipspline_platform/webhooks/signing.py``). Deliveries are sent by dispatcher threads,
never in a request; ``GET /v1/jobs/{id}/deliveries`` shows a job's, with every attempt, and
``GET /v1/webhooks/deliveries`` all of the tenant's (sweep and registry events included).
The rows are ``lipspline_platform/webhooks/endpoints.py``'s; this module parses and answers.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

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
from lipspline_platform.db.engine import Session
from lipspline_platform.db.tables import WebhookDeliveryRow
from lipspline_platform.jobs import queries as jobs
from lipspline_platform.webhooks import endpoints
from lipspline_platform.webhooks.outbox import PENDING
from service.http.openapi_docs import problems
from service.http.pagination import LINK_HEADER, Page, paged
from service.http.problems import invalid_field, not_found
from service.security.deps import AppSettings, DbSession, ReadTenant, TrainTenant
from service.security.ownership import found

router = APIRouter()
TAGS: list[str | object] = ["webhooks"]


@router.post("/v1/webhooks/secret", status_code=201, response_model=WebhookSecretOut, tags=TAGS)
def rotate_webhook_secret(session: DbSession, settings: AppSettings, tenant: TrainTenant) -> WebhookSecretOut:
    """Create the tenant's webhook signing secret, or replace it: shown in this response only, stored sealed."""
    made = endpoints.set_secret(session, settings, tenant)
    return WebhookSecretOut(secret=made.secret, created_at=made.created_at)


@router.post("/v1/webhooks", status_code=201, response_model=WebhookEndpointOut, tags=TAGS)
def register_webhook(
    spec: WebhookEndpointCreate, session: DbSession, settings: AppSettings, tenant: TrainTenant, response: Response
) -> WebhookEndpointOut:
    """Register a URL that receives the tenant's events: every job's final event, every sweep's end
    (``sweep.finished``, ``sweep.cancelled``), every registry version created and alias moved
    (``registry.version_created``, ``registry.alias_moved``); payloads: ``api_schemas/webhook_events.py``."""
    problem = endpoints.target_problem(spec.url, settings)
    if problem is not None:
        raise invalid_field("url", problem)
    created_secret = None if endpoints.has_secret(session, tenant) else endpoints.set_secret(session, settings, tenant)
    row = endpoints.add_endpoint(session, tenant, spec.url)
    response.headers["Location"] = f"/v1/webhooks/{row.id}"
    return WebhookEndpointOut(id=row.id, url=row.url, created_at=row.created_at,
                              secret=created_secret.secret if created_secret else None)


@router.get("/v1/webhooks", response_model=WebhookEndpointList, responses={200: LINK_HEADER}, tags=TAGS)
def list_webhooks(
    session: DbSession,
    tenant: ReadTenant,
    page: Page,
) -> WebhookEndpointList:
    """The tenant's registered endpoints, newest first, a page at a time (``next_cursor``)."""
    listed = paged(page, lambda window: endpoints.list_endpoints(session, tenant, window))
    return WebhookEndpointList(items=[WebhookEndpointOut(id=r.id, url=r.url, created_at=r.created_at)
                                      for r in listed.rows], next_cursor=listed.next_cursor)


@router.delete("/v1/webhooks/{endpoint_id}", status_code=204, responses=problems(404), tags=TAGS)
def delete_webhook(endpoint_id: str, session: DbSession, tenant: TrainTenant) -> Response:
    """Stop sending to this endpoint (deliveries already recorded keep their history)."""
    if not endpoints.delete_endpoint(session, tenant, endpoint_id):
        raise not_found("webhook", endpoint_id)
    return Response(status_code=204)


@router.get("/v1/jobs/{job_id}/deliveries", operation_id="list_job_deliveries", response_model=DeliveryList,
            responses=problems(404), tags=["jobs"])
def job_deliveries(job_id: str, session: DbSession, tenant: ReadTenant) -> DeliveryList:
    """Every webhook delivery of the job's final event, with every attempt and its answer."""
    found(jobs.find(session, tenant, job_id), "job", job_id)
    return DeliveryList(items=_deliveries_out(session, endpoints.deliveries_of_job(session, job_id)))


def _deliveries_out(session: Session, deliveries: list[WebhookDeliveryRow]) -> list[DeliveryOut]:
    """The deliveries with every attempt of each (one query for all their attempts)."""
    attempts = endpoints.attempts_of(session, deliveries)
    return [
        DeliveryOut(id=d.id, url=d.url, event=d.event, job_id=d.job_id, state=d.state,
                    attempts=[DeliveryAttemptOut.model_validate(a, from_attributes=True) for a in attempts[d.id]],
                    next_attempt_at=d.next_attempt_at if d.state == PENDING else None,
                    created_at=d.created_at, finished_at=d.finished_at)
        for d in deliveries
    ]


@router.get("/v1/webhooks/deliveries", operation_id="list_webhook_deliveries", response_model=DeliveryPage,
            responses={200: LINK_HEADER}, tags=TAGS)
def webhook_deliveries(
    session: DbSession,
    tenant: ReadTenant,
    page: Page,
    event: Annotated[str | None, Query(max_length=40, description="only this event, e.g. `sweep.finished`")] = None,
) -> DeliveryPage:
    """Every delivery of the tenant's events (jobs, sweeps, registry), newest first, with every attempt."""
    listed = paged(page, lambda window: endpoints.list_deliveries(session, tenant, window, event=event))
    return DeliveryPage(items=_deliveries_out(session, listed.rows), next_cursor=listed.next_cursor)
