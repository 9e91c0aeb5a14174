"""Tenants and their API keys as the operator's ``/v1/admin`` routes change them (across tenants).

Making a key (its secret form, its hash) is the API's (``service/security/auth.py``); this module keeps
the rows: tenants with their quotas, revocation of a tenant and of its keys, key listings.
Every function runs in the caller's transaction. Revoking never deletes: a revoked tenant keeps
its data and a revoked key its row (``revoked_at`` is set once; again is harmless).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api_schemas.timestamps import utcnow
from lipspline_platform.db.ids import new_id
from lipspline_platform.db.tables import ApiKeyRow, TenantRow


def create_tenant(session: Session, **fields: Any) -> TenantRow:
    """A new tenant with ``fields`` (its name and quotas); flushed."""
    row = TenantRow(id=new_id(), created_at=utcnow(), **fields)
    session.add(row)
    session.flush()
    return row


def all_tenants(session: Session) -> list[TenantRow]:
    return list(session.scalars(select(TenantRow).order_by(TenantRow.created_at)).all())


def find_tenant(session: Session, tenant_id: str, *, lock: bool = False) -> TenantRow | None:
    return session.get(TenantRow, tenant_id, with_for_update=lock)


def set_quotas(session: Session, tenant: TenantRow, *, max_active_jobs: int | None, max_stored_bytes: int | None,
               max_models: int | None) -> None:
    """Set the tenant's own quotas (None: the deployment's default); flushed."""
    tenant.quota_max_active_jobs = max_active_jobs
    tenant.quota_max_stored_bytes = max_stored_bytes
    tenant.quota_max_models = max_models
    session.flush()


def revoke_tenant(session: Session, tenant: TenantRow) -> None:
    """Revoke the tenant (locked by the caller) and every key of it still active; flushed."""
    now = utcnow()
    if tenant.revoked_at is None:
        tenant.revoked_at = now
    for key in session.scalars(select(ApiKeyRow).where(ApiKeyRow.tenant_id == tenant.id,
                                                       ApiKeyRow.revoked_at.is_(None))):
        key.revoked_at = now
    session.flush()


def keys(session: Session, tenant_id: str | None = None) -> list[ApiKeyRow]:
    """Every key, or one tenant's, oldest first."""
    query = select(ApiKeyRow).order_by(ApiKeyRow.created_at)
    if tenant_id is not None:
        query = query.where(ApiKeyRow.tenant_id == tenant_id)
    return list(session.scalars(query).all())


def revoke_key(session: Session, key_id: str, at: datetime | None = None) -> ApiKeyRow | None:
    """Revoke the key of id ``key_id`` (again is harmless); None when there is none. Flushed."""
    row = session.get(ApiKeyRow, key_id, with_for_update=True)
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at = at or utcnow()
    session.flush()
    return row
