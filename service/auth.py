"""API keys and tenants: every ``/v1`` route needs ``Authorization: Bearer <key>``.

Keys are ``lsk_`` + 32 URL-safe characters (192 random bits) and are stored only
as their SHA-256. A slow password hash buys nothing for keys this random, and a
fast one keeps authentication off the latency budget of every prediction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from api_schemas.timestamps import utcnow
from lipspline_platform.db.ids import new_id
from lipspline_platform.db.tables import DEFAULT_TENANT, ApiKeyRow, TenantRow

KEY_PREFIX = "lsk_"
PREFIX_CHARS = 12  # shown in listings and accepted by `keys revoke`; reveals 48 of 192 bits


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def tenant_by_name(session: Session, name: str, *, create: bool) -> TenantRow | None:
    tenant = session.scalars(select(TenantRow).where(TenantRow.name == name)).one_or_none()
    if tenant is None and create:
        tenant = TenantRow(id=DEFAULT_TENANT if name == DEFAULT_TENANT else new_id(), name=name)
        session.add(tenant)
        session.flush()
    return tenant


def create_key(session: Session, tenant_name: str) -> str:
    """A new key for the tenant (created if new); the plain key is returned once, never stored."""
    tenant = tenant_by_name(session, tenant_name, create=True)
    assert tenant is not None
    key = KEY_PREFIX + secrets.token_urlsafe(24)
    session.add(ApiKeyRow(id=new_id(), tenant_id=tenant.id, prefix=key[:PREFIX_CHARS], key_hash=hash_key(key)))
    session.flush()
    return key


def revoke_key(session: Session, key_or_prefix: str) -> int:
    """Revoke by full key or by its prefix; returns how many keys were revoked."""
    if len(key_or_prefix) > PREFIX_CHARS:
        rows = session.scalars(select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(key_or_prefix))).all()
    else:
        rows = session.scalars(select(ApiKeyRow).where(ApiKeyRow.prefix == key_or_prefix)).all()
    now = utcnow()
    count = 0
    for row in rows:
        if row.revoked_at is None:
            row.revoked_at = now
            count += 1
    return count


def tenant_for_key(session: Session, key: str) -> str | None:
    """The tenant id of an active key, or None."""
    if not key.startswith(KEY_PREFIX) or len(key) > 128:
        return None
    digest = hash_key(key)
    row = session.scalars(select(ApiKeyRow).where(ApiKeyRow.key_hash == digest)).one_or_none()
    # the lookup is by hash, so timing reveals nothing about the key; compare anyway, constant-time
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return row.tenant_id
