"""Request-scoped dependencies: settings and a database session per request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from sqlalchemy.orm import Session

from lipspline_platform.db.engine import session_scope
from lipspline_platform.observability import structured_logging
from lipspline_platform.settings import Settings
from service.http.metrics import RATE_LIMITED
from service.http.problems import ProblemError
from service.security.auth import PREFIX_CHARS
from service.security.scopes import Principal, Scope


async def settings_of(request: Request) -> Settings:
    # async: an attribute read runs on the event loop, not on a thread (as sync dependencies do)
    return request.app.state.settings


def db_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the handler returns, rolled back on error."""
    with session_scope(request.app.state.settings.resolved_database_url) as session:
        yield session


# scope="function": the transaction commits when the handler returns, *before* the
# response is sent, so a client never sees 201/204 for a write that is not yet durable
# (the default "request" scope would commit after the response).
DbSession = Annotated[Session, Depends(db_session, scope="function")]
AppSettings = Annotated[Settings, Depends(settings_of)]


def _where_the_key_is(settings: Settings) -> str:
    """On the embedded default, a hint where ``lipspline serve`` put its key: the file's name, never the
    server's filesystem path (an unauthenticated caller learns nothing about the host)."""
    if not settings.embedded_broker or not (settings.data_dir / "api-key").exists():
        return ""
    return "; `lipspline serve` printed the default tenant's key and wrote it to `api-key` in its data directory"


def _unauthorized(detail: str) -> ProblemError:
    error = ProblemError(401, "Unauthorized", detail, kind="unauthorized")
    error.headers = {"WWW-Authenticate": 'Bearer realm="lipspline"'}
    return error


#: Reads ``Authorization: Bearer <key>`` and, being a FastAPI security dependency, declares the
#: ``BearerAuth`` scheme in OpenAPI on exactly the routes that take a ``*Tenant``. It never answers
#: by itself (auto_error=False: its own error would not be problem+json); ``current_tenant`` does.
bearer = HTTPBearer(
    scheme_name="BearerAuth",
    bearerFormat="lsk_ API key",
    description="An API key: `lipspline keys create --tenant NAME` (the embedded default writes one "
    "to `$LIPSPLINE_DATA_DIR/api-key`).",
    auto_error=False,
)


def _insufficient_scope(scope: str) -> ProblemError:
    return ProblemError(403, "Forbidden", f"this API key lacks the {scope!r} scope this route needs",
                        kind="insufficient-scope", required_scope=scope)


async def principal_of_key(request: Request, key: str) -> Principal | None:
    """Who ``key`` speaks for now, or None (unknown, revoked, expired): the 1 s cache of verified keys on
    the event loop, the database in a thread when that answer is stale. Long requests (event
    streams) ask again while they run."""
    verified_keys = request.app.state.verified_keys
    fresh, principal = verified_keys.recent_answer(key)
    if not fresh:
        principal = await run_in_threadpool(verified_keys.principal_for, key)
    return principal


async def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """The principal of the request's API key; 401 without a valid key (unknown, revoked, expired).

    Async, so a key checked within the last second costs a dict lookup on the event loop; the
    database is asked (in a thread) only when that answer is stale.
    """
    settings: Settings = request.app.state.settings
    # None: no header, another scheme, or an empty key (surrounding spaces are stripped)
    if credentials is None:
        raise _unauthorized("Authorization: Bearer <API key> is required" + _where_the_key_is(settings))
    principal = await principal_of_key(request, credentials.credentials)
    if principal is None:
        raise _unauthorized("the API key is not valid (unknown, revoked or expired)" + _where_the_key_is(settings))
    return principal


async def _throttle(request: Request, principal: Principal) -> None:
    """429 above the key's rate: one bucket per key, shared by every API process when Redis holds it."""
    limiter = request.app.state.rate_limiter
    wait = await limiter.acquire_async(principal.key_id)
    if wait > 0:
        RATE_LIMITED.inc()
        settings: Settings = request.app.state.settings
        error = ProblemError(429, "Too Many Requests", f"rate limit of {settings.rate_limit_per_s:g} requests/s "
                             f"per key exceeded; retry in {wait:.2f} s", kind="rate-limited")
        error.headers = {"Retry-After": limiter.retry_after_header(wait)}
        raise error


async def current_principal(
    request: Request,
    security_scopes: SecurityScopes,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The request's principal if its key has the route's scope (403 otherwise), within its rate (429).

    Authenticated and throttled once per request, whatever the number of dependencies that ask
    (a route's scoped tenant and, say, its model-reference resolver): the principal is kept on
    the request, and each later call only checks the scopes it was declared with.
    """
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        principal = await authenticate(request, credentials)
    for scope in security_scopes.scopes:
        if not principal.allows(scope):
            raise _insufficient_scope(scope)
    if getattr(request.state, "principal", None) is None:
        await _throttle(request, principal)
        request.state.principal = principal
        structured_logging.bind(tenant=principal.tenant_id)
    return principal


async def current_tenant(principal: Annotated[Principal, Depends(current_principal)]) -> str:
    """The tenant id of :func:`current_principal` (what most routes need)."""
    return principal.tenant_id


async def require_admin_key(request: Request) -> None:
    """For routes whose key requirement is a setting (``/metrics``): an ``admin`` key, checked by hand."""
    credentials = await bearer(request)
    principal = await authenticate(request, credentials)
    if not principal.allows(Scope.admin):
        raise _insufficient_scope(Scope.admin)


#: the tenant of a key with the scope named; declared on each route (service/security/scopes.py says which)
ReadTenant = Annotated[str, Security(current_tenant, scopes=[Scope.read])]
PredictTenant = Annotated[str, Security(current_tenant, scopes=[Scope.predict])]
TrainTenant = Annotated[str, Security(current_tenant, scopes=[Scope.train])]
AdminPrincipal = Annotated[Principal, Security(current_principal, scopes=[Scope.admin])]
#: the principal of a key with the read scope (routes that also need its key id: event streams)
ReadPrincipal = Annotated[Principal, Security(current_principal, scopes=[Scope.read])]
#: the tenant of any valid key, for dependencies of routes that declare their scope themselves
#: (the model-reference resolver): never the only key check of a route
KeyTenant = Annotated[str, Depends(current_tenant)]


async def current_caller(
    principal: Annotated[Principal, Depends(current_principal)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """Who makes the request, as the registry records it: ``key:<the key's prefix>``.

    The prefix is what key listings show (``lipspline keys list``, ``GET /v1/admin/keys``), so an
    operator can tell which key moved an alias; it is not enough to use the key.
    """
    assert credentials is not None  # current_principal has refused requests without a key
    return f"key:{credentials.credentials[:PREFIX_CHARS]}"


Caller = Annotated[str, Depends(current_caller)]
