"""A tenant's webhook secret, its registered endpoints and its deliveries, as the API reads and writes them.

The signing secret is per tenant, stored sealed (``secret_store``): the plain value exists only
in the answer of the request that makes it. Endpoints are URLs that receive every event of the
tenant; a job's ``notify_url`` receives its final event. Every function here runs in the
caller's transaction (``service.security.deps.DbSession``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from api_schemas.timestamps import utcnow
from lipspline_platform.db.ids import new_id
from lipspline_platform.db.ownership import find_owned
from lipspline_platform.db.pagination import Rows, Window, list_owned
from lipspline_platform.db.tables import WebhookAttemptRow, WebhookDeliveryRow, WebhookEndpointRow, WebhookSecretRow
from lipspline_platform.settings import Settings
from lipspline_platform.webhooks import secret_store
from lipspline_platform.webhooks.signing import new_secret
from lipspline_platform.webhooks.targets import RefusedTargetError, check_target

#: why a ``notify_url`` is refused while the tenant has no secret to sign with
NO_SECRET = "webhooks are signed with the tenant's secret, and it has none yet: POST /v1/webhooks/secret"


# ---- targets and the secret ----------------------------------------------------------------------
def target_problem(url: str, settings: Settings) -> str | None:
    """Why ``url`` may not receive webhooks (``targets.check_target``), or None when it may."""
    try:
        check_target(url, allow_private=settings.webhook_allow_private)
    except RefusedTargetError as exc:
        return str(exc)
    return None


def notify_url_problem(session: Session, url: str, tenant_id: str, settings: Settings) -> str | None:
    """Why a job may not notify ``url``: a refused target, or a tenant with no secret yet; None when it may."""
    return target_problem(url, settings) or (None if has_secret(session, tenant_id) else NO_SECRET)


def has_secret(session: Session, tenant_id: str) -> bool:
    return session.get(WebhookSecretRow, tenant_id) is not None


@dataclass(frozen=True)
class NewSecret:
    """A secret just made: its plain value (shown once) and when it was made."""

    secret: str
    created_at: datetime


def set_secret(session: Session, settings: Settings, tenant_id: str) -> NewSecret:
    """A new secret for ``tenant_id`` (replacing any), stored sealed; flushed."""
    secret, now = new_secret(), utcnow()
    sealed = secret_store.seal(settings, tenant_id, secret)
    row = session.get(WebhookSecretRow, tenant_id, with_for_update=True)
    if row is None:
        session.add(WebhookSecretRow(tenant_id=tenant_id, secret=sealed, created_at=now))
    else:
        row.secret, row.created_at = sealed, now
    session.flush()
    return NewSecret(secret, now)


# ---- endpoints -----------------------------------------------------------------------------------
def add_endpoint(session: Session, tenant_id: str, url: str) -> WebhookEndpointRow:
    """Register ``url`` (already checked) for the tenant's events; flushed."""
    row = WebhookEndpointRow(id=new_id(), tenant_id=tenant_id, url=url, created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def list_endpoints(session: Session, tenant_id: str, window: Window) -> Rows:
    return list_owned(session, WebhookEndpointRow, window, tenant_id=tenant_id)


def delete_endpoint(session: Session, tenant_id: str, endpoint_id: str) -> bool:
    """Remove the tenant's endpoint (its recorded deliveries keep their history); False when there is none."""
    row = find_owned(session, WebhookEndpointRow, endpoint_id, tenant_id)
    if row is None:
        return False
    session.delete(row)
    return True


# ---- deliveries ----------------------------------------------------------------------------------
def deliveries_of_job(session: Session, job_id: str) -> list[WebhookDeliveryRow]:
    """Every delivery of the job's final event, oldest first (the caller checked the job is the tenant's)."""
    query = select(WebhookDeliveryRow).where(WebhookDeliveryRow.job_id == job_id)
    return list(session.scalars(query.order_by(WebhookDeliveryRow.created_at)))


def list_deliveries(session: Session, tenant_id: str, window: Window, *, event: str | None = None) -> Rows:
    """One window of the tenant's deliveries (of ``event`` only, when given), newest first."""
    where = [] if event is None else [WebhookDeliveryRow.event == event]
    return list_owned(session, WebhookDeliveryRow, window, tenant_id=tenant_id, where=where)


def attempts_of(session: Session, deliveries: list[WebhookDeliveryRow]) -> dict[str, list[WebhookAttemptRow]]:
    """delivery id -> its attempts, in order: one query for all of them."""
    attempts: dict[str, list[WebhookAttemptRow]] = {d.id: [] for d in deliveries}
    if deliveries:
        query = select(WebhookAttemptRow).where(WebhookAttemptRow.delivery_id.in_(list(attempts)))
        for attempt in session.scalars(query.order_by(WebhookAttemptRow.attempt)):
            attempts[attempt.delivery_id].append(attempt)
    return attempts
