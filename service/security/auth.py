"""API keys and tenants: every ``/v1`` route needs ``Authorization: Bearer <key>``.

Keys are ``lsk_`` + 32 URL-safe characters (192 random bits) and are stored only
as their SHA-256. A slow password hash buys nothing for keys this random, and a
fast one keeps authentication off the latency budget of every prediction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from api_schemas.timestamps import as_utc, utcnow
from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.ids import new_id
from lipspline_platform.db.tables import DEFAULT_TENANT, ApiKeyRow, TenantRow
from service.security.scopes import DEFAULT_KEY_SCOPES, Principal, format_scopes, parse_scopes

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


def create_key(
    session: Session,
    tenant_name: str,
    scopes: tuple | frozenset = DEFAULT_KEY_SCOPES,
    *,
    expires_at: datetime | None = None,
    name: str | None = None,
) -> str:
    """A new key for the tenant (created if new); the plain key is returned once, never stored."""
    tenant = tenant_by_name(session, tenant_name, create=True)
    assert tenant is not None
    return add_key(session, tenant, scopes, expires_at=expires_at, name=name)[0]


def add_key(
    session: Session,
    tenant: TenantRow,
    scopes: tuple | frozenset,
    *,
    expires_at: datetime | None = None,
    name: str | None = None,
) -> tuple[str, ApiKeyRow]:
    """A new key of an existing tenant: the plain key (shown once) and its stored row."""
    key = KEY_PREFIX + secrets.token_urlsafe(24)
    row = ApiKeyRow(id=new_id(), tenant_id=tenant.id, prefix=key[:PREFIX_CHARS], key_hash=hash_key(key),
                    scopes=format_scopes(scopes), expires_at=expires_at, name=name)
    session.add(row)
    session.flush()
    return key, row


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


def principal_for_key(session: Session, key: str) -> Principal | None:
    """Who an active key speaks for, or None (unknown, revoked, expired, or its tenant revoked)."""
    if not key.startswith(KEY_PREFIX) or len(key) > 128:
        return None
    digest = hash_key(key)
    found = session.execute(
        select(ApiKeyRow, TenantRow.revoked_at)
        .join(TenantRow, TenantRow.id == ApiKeyRow.tenant_id)
        .where(ApiKeyRow.key_hash == digest)
    ).one_or_none()
    if found is None:
        return None
    row, tenant_revoked_at = found
    # the lookup is by hash, so timing reveals nothing about the key; compare anyway, constant-time
    if row.revoked_at is not None or tenant_revoked_at is not None or not hmac.compare_digest(row.key_hash, digest):
        return None
    expires_at = as_utc(row.expires_at).timestamp() if row.expires_at is not None else None
    if expires_at is not None and expires_at <= time.time():
        return None
    return Principal(row.tenant_id, parse_scopes(row.scopes), row.id, expires_at)


def tenant_for_key(session: Session, key: str) -> str | None:
    """The tenant id of an active key, or None."""
    principal = principal_for_key(session, key)
    return principal.tenant_id if principal is not None else None


class VerifiedKeys:
    """Which keys were verified recently: authentication without a database round trip per request.

    A key's answer (its principal, or "not valid") is trusted for ``ttl_s`` seconds, then asked of
    the database again, so a revocation takes effect in every API process within ``ttl_s``
    (1 s by default). While the database is unreachable, a key that was valid at its last check
    stays valid (no revocation can be read then either), so predictions of loaded models go on
    through an outage; a key never verified gets the outage's 503.
    """

    def __init__(self, database_url: str, ttl_s: float) -> None:
        self.database_url, self.ttl_s = database_url, ttl_s
        self._answers: dict[str, tuple[Principal | None, float]] = {}
        self._lock = threading.Lock()

    def recent_answer(self, key: str) -> tuple[bool, Principal | None]:
        """``(True, principal or None)`` when the key was checked within ``ttl_s``; ``(False, None)`` otherwise.

        Never touches the database, so the async auth dependency asks this first, on the event
        loop, and goes to a thread for :meth:`principal_for` only when the answer is stale.
        """
        now = time.monotonic()
        with self._lock:
            known = self._answers.get(hash_key(key))
        if known is not None and now - known[1] < self.ttl_s:
            return True, _unexpired(known[0])
        return False, None

    def principal_for(self, key: str) -> Principal | None:
        digest = hash_key(key)
        now = time.monotonic()
        with self._lock:
            known = self._answers.get(digest)
        if known is not None and now - known[1] < self.ttl_s:
            return _unexpired(known[0])
        try:
            with session_scope(self.database_url) as session:
                principal = principal_for_key(session, key)
        except (OperationalError, InterfaceError):
            if known is not None and known[0] is not None:
                return _unexpired(known[0])
            raise
        with self._lock:
            if len(self._answers) > 100_000:  # bounded: forget everything rather than grow without limit
                self._answers.clear()
            self._answers[digest] = (principal, now)
        return principal

    def tenant_for(self, key: str) -> str | None:
        principal = self.principal_for(key)
        return principal.tenant_id if principal is not None else None

    def forget_all(self) -> None:
        """Drop every answer: this process's revocations take effect at once (others within ``ttl_s``)."""
        with self._lock:
            self._answers.clear()


def _unexpired(principal: Principal | None) -> Principal | None:
    # a cached answer never outlives the key's expiry, not even by the cache's second
    if principal is not None and principal.expires_at is not None and principal.expires_at <= time.time():
        return None
    return principal
