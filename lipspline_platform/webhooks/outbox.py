"""The webhook outbox: deliveries are rows, written with the change they report, sent later.

The changes reported: a job's final status, a sweep's end, a registry version created, an
alias moved (the events and their payloads: ``api_schemas/webhook_events.py``).

Writing the delivery in the transaction that ends the job means an event is never lost (a
crash after the commit leaves the row to send) and never invented (a rolled-back transition
leaves none). Sending happens outside any request, in a dispatcher thread; a process that
dies mid-send loses nothing either: :func:`take_due` first moves the delivery's
``next_attempt_at`` forward by a lease, so another dispatcher retries it once the lease ends.
The lease outlasts an attempt's deadline, so a delivery is never sent by two dispatchers at once.
A receiver may therefore see one delivery twice (at-least-once); ``X-LipSpline-Delivery``
names it, so the receiver can drop repeats.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from api_schemas.timestamps import as_utc, utcnow
from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.ids import new_id
from lipspline_platform.db.tables import (
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
    WebhookSecretRow,
)
from lipspline_platform.settings import Settings
from lipspline_platform.webhooks import secret_store

log = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def enqueue(session: Session, *, tenant_id: str, job_id: str | None, notify_url: str | None, event: str,
            payload: dict[str, Any]) -> int:
    """One pending delivery per target (the job's ``notify_url``, then each registered endpoint).

    ``job_id`` is None for an event that is not a job's (a sweep's, the registry's: :func:`enqueue_event`).
    """
    urls = [notify_url] if notify_url else []
    endpoints = select(WebhookEndpointRow.url).where(WebhookEndpointRow.tenant_id == tenant_id)
    urls += session.scalars(endpoints.order_by(WebhookEndpointRow.created_at)).all()
    now = utcnow()
    for url in dict.fromkeys(urls):  # one delivery per distinct URL
        session.add(WebhookDeliveryRow(
            id=new_id(), tenant_id=tenant_id, job_id=job_id, url=url, event=event, payload=payload,
            state=PENDING, attempts=0, next_attempt_at=now, created_at=now,
        ))
    return len(urls)


def enqueue_event(session: Session, *, tenant_id: str, event: BaseModel) -> int:
    """An event that is not a job's final one (``api_schemas/webhook_events.py``), to each registered endpoint.

    In the caller's transaction, like a job's: the delivery commits with the change it reports, or not at all.
    The payload is the contract's JSON form, so what is sent is what the contract documents.
    """
    payload = event.model_dump(mode="json")
    return enqueue(session, tenant_id=tenant_id, job_id=None, notify_url=None, event=payload["event"],
                   payload=payload)


@dataclass(frozen=True)
class DueDelivery:
    """A delivery this dispatcher now holds for one attempt."""

    id: str
    tenant_id: str
    url: str
    event: str
    payload: dict[str, Any]
    attempt: int
    created_at: datetime
    secret: str | None
    #: why ``secret`` is None although the tenant has one (this process's sealing key cannot open it)
    secret_problem: str | None = None


def take_due(settings: Settings, now: datetime, limit: int = 20, due_by: datetime | None = None, *,
             per_tenant: int | None = None, in_flight: Mapping[str, int] | None = None) -> list[DueDelivery]:
    """Pending deliveries due now (or by ``due_by``), each claimed by moving ``next_attempt_at`` past a lease.

    With ``per_tenant``, at most that many of one tenant, counting the ``in_flight`` ones the
    caller already sends for it: the oldest due of each tenant first (a window over each tenant's
    due rows, so a tenant with a long backlog cannot fill the batch and starve the others).
    """
    due_by = now if due_by is None else min(due_by, now)
    in_flight = in_flight or {}
    # longer than an attempt can last (Settings checks it): never taken again while still in flight
    lease = timedelta(seconds=settings.webhook_lease)
    due = select(WebhookDeliveryRow.id).where(
        WebhookDeliveryRow.state == PENDING, WebhookDeliveryRow.next_attempt_at <= due_by
    )
    if per_tenant is not None:
        full = [tenant for tenant, count in in_flight.items() if count >= per_tenant]
        if full:
            due = due.where(WebhookDeliveryRow.tenant_id.not_in(full))
        rank = func.row_number().over(partition_by=WebhookDeliveryRow.tenant_id,
                                      order_by=WebhookDeliveryRow.next_attempt_at)
        ranked = due.add_columns(rank.label("rank")).subquery()
        due = select(ranked.c.id).where(ranked.c.rank <= per_tenant)
    taken: list[DueDelivery] = []
    with session_scope(settings.resolved_database_url) as session:
        rows = session.execute(
            select(WebhookDeliveryRow, WebhookSecretRow.secret)
            .outerjoin(WebhookSecretRow, WebhookSecretRow.tenant_id == WebhookDeliveryRow.tenant_id)
            .where(WebhookDeliveryRow.id.in_(due.scalar_subquery()))
            .order_by(WebhookDeliveryRow.next_attempt_at)
            .limit(limit)
        ).all()
        held = dict(in_flight)
        for row, secret in rows:
            if per_tenant is not None and held.get(row.tenant_id, 0) >= per_tenant:
                continue
            claimed = session.execute(
                update(WebhookDeliveryRow)
                .where(
                    WebhookDeliveryRow.id == row.id,
                    WebhookDeliveryRow.state == PENDING,
                    WebhookDeliveryRow.attempts == row.attempts,
                )
                .where(WebhookDeliveryRow.next_attempt_at <= due_by)
                .values(next_attempt_at=now + lease)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount == 1:
                held[row.tenant_id] = held.get(row.tenant_id, 0) + 1
                opened, problem = _opened_secret(settings, row.tenant_id, secret)
                taken.append(DueDelivery(row.id, row.tenant_id, row.url, row.event, row.payload, row.attempts + 1,
                                         as_utc(row.created_at), opened, problem))
    return taken


def _opened_secret(settings: Settings, tenant_id: str, stored: str | None) -> tuple[str | None, str | None]:
    """The tenant's signing secret, opened; or None and why (logged in full for the operator only)."""
    if stored is None:
        return None, None
    try:
        return secret_store.open_sealed(settings, tenant_id, stored), None
    except secret_store.SecretKeyError as exc:
        log.error("webhook secret of tenant %s cannot be opened: %s", tenant_id, exc)
        return None, "the service could not open the tenant's webhook secret (operator: check LIPSPLINE_SECRETS_KEY)"


def backoff_s(settings: Settings, attempt: int) -> float:
    """Wait after failed attempt ``attempt`` (1-based): base, 2·base, 4·base … capped."""
    return min(settings.webhook_backoff_s * 2 ** (attempt - 1), settings.webhook_backoff_max_s)


@dataclass(frozen=True)
class AttemptResult:
    started_at: datetime
    duration_s: float
    status_code: int | None
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


SUPERSEDED = "superseded"


def record_attempt(settings: Settings, delivery: DueDelivery, result: AttemptResult) -> str:
    """Store the attempt, then mark the delivery delivered, due again after a backoff, or failed.

    Only while the delivery is still this attempt's: if recording came so late that the lease
    ended and another dispatcher recorded the same attempt number first, nothing is written
    and :data:`SUPERSEDED` is returned.
    """
    now = utcnow()
    with session_scope(settings.resolved_database_url) as session:
        values: dict[str, Any] = {"attempts": delivery.attempt}
        next_at = now + timedelta(seconds=backoff_s(settings, delivery.attempt))
        if result.succeeded:
            state = DELIVERED
            values.update(finished_at=now)
        elif next_at > delivery.created_at + timedelta(seconds=settings.webhook_retry_for_s):
            state = FAILED
            values.update(finished_at=now)
        else:
            state = PENDING
            values.update(next_attempt_at=next_at)
        recorded = session.execute(
            update(WebhookDeliveryRow)
            .where(
                WebhookDeliveryRow.id == delivery.id,
                WebhookDeliveryRow.state == PENDING,
                WebhookDeliveryRow.attempts == delivery.attempt - 1,
            )
            .values(state=state, **values)
            .execution_options(synchronize_session=False)
        )
        if recorded.rowcount != 1:
            return SUPERSEDED
        session.add(WebhookAttemptRow(
            delivery_id=delivery.id, attempt=delivery.attempt, started_at=result.started_at,
            duration_s=result.duration_s, status_code=result.status_code, error=result.error,
            succeeded=result.succeeded,
        ))
    return state
