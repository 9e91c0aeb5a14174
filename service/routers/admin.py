"""``/v1/admin``: tenants and API keys, for ``admin`` keys (the operator's scope, across tenants).

A revocation (of a key, or of a tenant and so all its keys) is at once in the API process
that made it and within ``auth_cache_ttl_s`` (1 s by default) in every other one: each
process trusts a verified key for that long (``service/security/auth.py``). The rows are
``lipspline_platform/tenants.py``'s; keys are made by ``service/security/auth.py``.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from api_schemas.admin import KeyCreate, KeyCreated, KeyList, KeyOut, TenantCreate, TenantList, TenantOut, TenantUpdate
from api_schemas.timestamps import utcnow
from lipspline_platform import tenants
from lipspline_platform.db.engine import Session
from lipspline_platform.db.tables import ApiKeyRow, TenantRow
from service.http.openapi_docs import problems
from service.http.problems import ProblemError, invalid_field, not_found
from service.security import auth
from service.security.deps import AdminPrincipal, DbSession
from service.security.scopes import parse_scopes

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/admin", tags=["admin"])


def tenant_out(row: TenantRow) -> TenantOut:
    return TenantOut.model_validate(row, from_attributes=True)


def key_out(row: ApiKeyRow) -> KeyOut:
    return KeyOut(id=row.id, tenant_id=row.tenant_id, prefix=row.prefix, scopes=sorted(parse_scopes(row.scopes)),
                  name=row.name, created_at=row.created_at, expires_at=row.expires_at,
                  revoked_at=row.revoked_at)


def _tenant(session: Session, tenant_id: str, *, lock: bool = False) -> TenantRow:
    row = tenants.find_tenant(session, tenant_id, lock=lock)
    if row is None:
        raise not_found("tenant", tenant_id)
    return row


def _forget_verified_keys(request: Request) -> None:
    # this process stops trusting the revoked keys now; the others within their cache's ttl
    request.app.state.verified_keys.forget_all()


@router.post("/tenants", status_code=201, response_model=TenantOut,
             responses=problems((409, "a tenant of that name exists")))
def create_tenant(spec: TenantCreate, session: DbSession, admin: AdminPrincipal) -> JSONResponse:
    """A new tenant, with its quotas (unset: the deployment's defaults)."""
    if auth.tenant_by_name(session, spec.name, create=False) is not None:
        raise ProblemError(409, "Conflict", f"tenant {spec.name!r} exists", kind="tenant-exists")
    row = tenants.create_tenant(session, **spec.model_dump())
    log.info("tenant %s (%s) created by key %s", row.name, row.id, admin.key_id)
    body = tenant_out(row).model_dump(mode="json")
    return JSONResponse(body, status_code=201, headers={"Location": f"/v1/admin/tenants/{row.id}"})


@router.get("/tenants", response_model=TenantList)
def list_tenants(session: DbSession, admin: AdminPrincipal) -> TenantList:
    return TenantList(items=[tenant_out(r) for r in tenants.all_tenants(session)])


@router.patch("/tenants/{tenant_id}", response_model=TenantOut, responses=problems(404))
def update_tenant(tenant_id: str, spec: TenantUpdate, session: DbSession, admin: AdminPrincipal) -> TenantOut:
    """Set the tenant's quotas."""
    row = _tenant(session, tenant_id, lock=True)
    tenants.set_quotas(session, row, max_active_jobs=spec.quota_max_active_jobs,
                       max_stored_bytes=spec.quota_max_stored_bytes, max_models=spec.quota_max_models)
    return tenant_out(row)


@router.post("/tenants/{tenant_id}/revoke", response_model=TenantOut, responses=problems(404))
def revoke_tenant(tenant_id: str, request: Request, session: DbSession, admin: AdminPrincipal) -> TenantOut:
    """Revoke the tenant: all its keys stop working and no new one can be made; its data is kept."""
    row = _tenant(session, tenant_id, lock=True)
    tenants.revoke_tenant(session, row)
    _forget_verified_keys(request)
    log.info("tenant %s revoked by key %s", tenant_id, admin.key_id)
    return tenant_out(row)


@router.post("/keys", status_code=201, response_model=KeyCreated,
             responses=problems((422, "invalid body, or `tenant` names no tenant (or a revoked one)")))
def create_key(spec: KeyCreate, session: DbSession, admin: AdminPrincipal) -> JSONResponse:
    """A new key for an existing tenant; the key itself is in this response only."""
    tenant = auth.tenant_by_name(session, spec.tenant, create=False)
    if tenant is None or tenant.revoked_at is not None:
        raise invalid_field("tenant", f"no active tenant named {spec.tenant!r} (create it with POST /v1/admin/tenants)")
    if spec.expires_at is not None and spec.expires_at <= utcnow():
        raise invalid_field("expires_at", "is in the past")
    key, row = auth.add_key(session, tenant, frozenset(spec.scopes), expires_at=spec.expires_at, name=spec.name)
    log.info("key %s (%s) for tenant %s created by key %s", row.id, row.prefix, tenant.name, admin.key_id)
    body = KeyCreated(**key_out(row).model_dump(), key=key).model_dump(mode="json")
    return JSONResponse(body, status_code=201, headers={"Location": f"/v1/admin/keys/{row.id}"})


@router.get("/keys", response_model=KeyList)
def list_keys(session: DbSession, admin: AdminPrincipal, tenant: str | None = None) -> KeyList:
    """Every key (or one tenant's, by name), by prefix: no secret is ever listed."""
    tenant_id = None
    if tenant is not None:
        row = auth.tenant_by_name(session, tenant, create=False)
        if row is None:
            return KeyList(items=[])
        tenant_id = row.id
    return KeyList(items=[key_out(r) for r in tenants.keys(session, tenant_id)])


@router.delete("/keys/{key_id}", status_code=204, responses=problems(404))
def revoke_key(key_id: str, request: Request, session: DbSession, admin: AdminPrincipal) -> Response:
    """Revoke a key (again is harmless): at once here, within the key cache's second elsewhere."""
    row = tenants.revoke_key(session, key_id)
    if row is None:
        raise not_found("key", key_id)
    _forget_verified_keys(request)
    log.info("key %s (%s) revoked by key %s", row.id, row.prefix, admin.key_id)
    return Response(status_code=204)
