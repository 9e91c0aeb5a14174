"""A tenant's own object-store credentials, for its ``s3://`` dataset URIs.

Why per tenant: on a shared platform each team's data sits in its own bucket under its own
keys, and the service's keys (its environment) should not reach every bucket. A tenant that
stored keys here has its URIs read with them, at registration (API) and when a job streams
the rows (worker); one that did not, with the service's.

At rest they are sealed like webhook secrets (AES-256-GCM under the service's secrets key,
the tenant id and the purpose ``storage`` as associated data: ``webhooks/secret_store.py``),
so a database dump holds no usable key; the row keeps, in the clear, only what responses
show: the key id's last four characters, the region, whether a session token was given.
"""

from __future__ import annotations

import json

from sqlalchemy.orm import Session

from api_schemas.dataset_refs import S3CredentialsIn, S3CredentialsOut, StorageCredentialsIn, StorageCredentialsOut
from api_schemas.timestamps import as_utc, utcnow
from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.tables import StorageCredentialsRow
from lipspline_platform.settings import Settings
from lipspline_platform.webhooks import secret_store

#: the associated-data purpose these secrets are sealed under
PURPOSE = "storage"


def _out(row: StorageCredentialsRow) -> StorageCredentialsOut:
    return StorageCredentialsOut(
        s3=S3CredentialsOut(access_key_id_hint=f"…{row.access_key_hint}", region=row.region,
                            has_session_token=row.has_session_token),
        updated_at=as_utc(row.updated_at),
    )


def put(session: Session, settings: Settings, tenant_id: str, given: StorageCredentialsIn) -> StorageCredentialsOut:
    """Store (or replace) the tenant's keys, sealed; the answer shows none of them."""
    keys: S3CredentialsIn = given.s3
    sealed = secret_store.seal(settings, tenant_id, json.dumps(keys.model_dump(mode="json")), PURPOSE)
    row = session.get(StorageCredentialsRow, tenant_id)
    if row is None:
        row = StorageCredentialsRow(tenant_id=tenant_id)
        session.add(row)
    row.sealed, row.access_key_hint = sealed, keys.access_key_id[-4:]
    row.region, row.has_session_token, row.updated_at = keys.region, keys.session_token is not None, utcnow()
    session.flush()
    return _out(row)


def describe(session: Session, tenant_id: str) -> StorageCredentialsOut | None:
    row = session.get(StorageCredentialsRow, tenant_id)
    return None if row is None else _out(row)


def delete(session: Session, tenant_id: str) -> bool:
    row = session.get(StorageCredentialsRow, tenant_id)
    if row is None:
        return False
    session.delete(row)
    return True


def s3_keys(settings: Settings, tenant_id: str) -> S3CredentialsIn | None:
    """The tenant's opened keys, or None (the service's own are used); SecretKeyError if they do not open."""
    with session_scope(settings.resolved_database_url) as session:
        row = session.get(StorageCredentialsRow, tenant_id)
        sealed = None if row is None else row.sealed
    if sealed is None:
        return None
    # the contract's secret fields are repr=False: the opened keys never show in a log line
    return S3CredentialsIn.model_validate_json(secret_store.open_sealed(settings, tenant_id, sealed, PURPOSE))
