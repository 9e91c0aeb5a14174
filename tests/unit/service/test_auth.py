"""service/security/auth.py on a migrated SQLite database: key format, storage as a hash only, lookup,
revocation by key or prefix, tenants created on demand."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from lipspline_platform.db.engine import dispose_all, session_scope
from lipspline_platform.db.migrate import upgrade
from lipspline_platform.db.tables import DEFAULT_TENANT, ApiKeyRow, TenantRow
from service.security import auth


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("auth") / "migrated.sqlite3"
    upgrade(f"sqlite:///{path.resolve()}")
    return path


@pytest.fixture
def url(tmp_path: Path, migrated: Path) -> Iterator[str]:
    shutil.copyfile(migrated, tmp_path / "db.sqlite3")
    yield f"sqlite:///{(tmp_path / 'db.sqlite3').resolve()}"
    dispose_all()


def create(url: str, tenant: str) -> str:
    with session_scope(url) as session:
        return auth.create_key(session, tenant)


def lookup(url: str, key: str) -> str | None:
    with session_scope(url) as session:
        return auth.tenant_for_key(session, key)


def revoke(url: str, key_or_prefix: str) -> int:
    with session_scope(url) as session:
        return auth.revoke_key(session, key_or_prefix)


def test_hash_key_is_sha256_hex() -> None:
    assert auth.hash_key("lsk_abc") == hashlib.sha256(b"lsk_abc").hexdigest()
    assert len(auth.hash_key("\udcff")) == 64  # a lone surrogate (from a bad header) hashes instead of raising


def test_keys_have_the_documented_shape_and_are_stored_only_as_a_hash(url: str) -> None:
    key = create(url, DEFAULT_TENANT)
    assert re.fullmatch(r"lsk_[A-Za-z0-9_-]{32}", key), key
    with session_scope(url) as session:
        (row,) = session.query(ApiKeyRow).all()
        stored = [str(getattr(row, column.key)) for column in ApiKeyRow.__table__.columns]
        assert row.tenant_id == DEFAULT_TENANT and row.revoked_at is None
        assert row.prefix == key[: auth.PREFIX_CHARS] and row.key_hash == auth.hash_key(key)
    assert not any(key in value for value in stored)  # the plain key is nowhere in the row
    assert create(url, DEFAULT_TENANT) != key


def test_a_new_tenant_is_created_once_with_its_own_id(url: str) -> None:
    first, second = create(url, "acme"), create(url, "acme")
    with session_scope(url) as session:
        tenants = session.query(TenantRow).filter_by(name="acme").all()
        assert len(tenants) == 1 and tenants[0].id != DEFAULT_TENANT
        tenant_id = tenants[0].id
    assert lookup(url, first) == lookup(url, second) == tenant_id
    assert lookup(url, create(url, DEFAULT_TENANT)) == DEFAULT_TENANT


def test_tenant_by_name(url: str) -> None:
    with session_scope(url) as session:
        assert auth.tenant_by_name(session, "nobody", create=False) is None
        made = auth.tenant_by_name(session, "somebody", create=True)
        assert made is not None and made.name == "somebody"
        assert auth.tenant_by_name(session, "somebody", create=False).id == made.id
        assert auth.tenant_by_name(session, DEFAULT_TENANT, create=False).id == DEFAULT_TENANT


@pytest.mark.parametrize("key", ["", "lsk_", "lsk_unknown-but-well-formed-key-000000", "LSK_abc", "sk_abc",
                                 "lsk_" + "a" * 125, "\udcff"])
def test_unknown_or_malformed_keys_have_no_tenant(url: str, key: str) -> None:
    create(url, DEFAULT_TENANT)
    assert lookup(url, key) is None


def test_a_key_too_long_is_refused_before_any_lookup(url: str) -> None:
    key = create(url, DEFAULT_TENANT)
    with session_scope(url) as session:
        # plant a row whose hash matches a 129-character key: the length check alone refuses it
        long_key = key + "x" * (129 - len(key))
        session.add(ApiKeyRow(id="long", tenant_id=DEFAULT_TENANT, prefix=long_key[:12],
                              key_hash=auth.hash_key(long_key)))
    assert lookup(url, long_key) is None and lookup(url, key) == DEFAULT_TENANT


def test_revoke_by_full_key(url: str) -> None:
    key, other = create(url, DEFAULT_TENANT), create(url, DEFAULT_TENANT)
    assert revoke(url, key) == 1
    assert lookup(url, key) is None and lookup(url, other) == DEFAULT_TENANT
    assert revoke(url, key) == 0  # already revoked
    with session_scope(url) as session:
        assert session.query(ApiKeyRow).filter(ApiKeyRow.revoked_at.is_not(None)).count() == 1


def test_revoke_by_prefix(url: str) -> None:
    key, other = create(url, "acme"), create(url, "acme")
    assert revoke(url, key[: auth.PREFIX_CHARS]) == 1
    assert lookup(url, key) is None and lookup(url, other) is not None


@pytest.mark.parametrize("what", ["lsk_", "", "lsk_nothing-like-this-key-at-all-0000"])
def test_revoke_of_nothing_revokes_nothing(url: str, what: str) -> None:
    key = create(url, DEFAULT_TENANT)
    assert revoke(url, what) == 0
    assert lookup(url, key) == DEFAULT_TENANT


def test_revocation_is_in_the_callers_transaction(url: str) -> None:
    key = create(url, DEFAULT_TENANT)
    with pytest.raises(RuntimeError), session_scope(url) as session:
        assert auth.revoke_key(session, key) == 1
        raise RuntimeError("rolled back")
    assert lookup(url, key) == DEFAULT_TENANT


def test_create_key_flushes_so_the_caller_may_use_it_at_once(url: str) -> None:
    with session_scope(url) as session:
        key = auth.create_key(session, "fresh")
        assert isinstance(session, Session) and auth.tenant_for_key(session, key) is not None


# ---- VerifiedKeys: the per-process cache of verified keys
def test_verified_keys_answers_from_the_cache_within_the_ttl(url: str) -> None:
    key = create(url, "acme")
    cached = auth.VerifiedKeys(url, ttl_s=60)
    tenant = cached.tenant_for(key)
    assert tenant is not None and tenant == lookup(url, key)
    assert cached.tenant_for("lsk_unknown") is None
    revoke(url, key)
    assert cached.tenant_for(key) == tenant  # trusted for ttl_s: the documented delay of a revocation
    assert auth.VerifiedKeys(url, ttl_s=60).tenant_for(key) is None  # a fresh process sees it at once


def test_verified_keys_with_no_ttl_asks_the_database_each_time(url: str) -> None:
    key = create(url, DEFAULT_TENANT)
    uncached = auth.VerifiedKeys(url, ttl_s=0)
    assert uncached.tenant_for(key) == DEFAULT_TENANT
    revoke(url, key)
    assert uncached.tenant_for(key) is None


def test_verified_keys_during_a_database_outage(url: str, tmp_path: Path) -> None:
    """A key valid at its last check stays valid while the database is unreachable; any other raises."""
    from sqlalchemy.exc import OperationalError

    good, bad = create(url, DEFAULT_TENANT), "lsk_never-valid-never-valid-never-va"
    keys = auth.VerifiedKeys(url, ttl_s=0)
    assert keys.tenant_for(good) == DEFAULT_TENANT and keys.tenant_for(bad) is None
    (tmp_path / "gone").mkdir()
    keys.database_url = f"sqlite:///{(tmp_path / 'gone').resolve()}"  # a folder: no connection can be opened
    assert keys.tenant_for(good) == DEFAULT_TENANT
    for unknown in (bad, create(url, DEFAULT_TENANT)):  # known invalid, and never seen
        with pytest.raises(OperationalError):
            keys.tenant_for(unknown)
