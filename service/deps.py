"""Request-scoped dependencies: settings and a database session per request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from lipspline_platform.db.engine import session_scope
from lipspline_platform.settings import Settings
from service.auth import PREFIX_CHARS
from service.problems import ProblemError


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
    """On the embedded default, where ``lipspline serve`` wrote its key (the path, never the key)."""
    path = settings.data_dir.resolve() / "api-key"
    if not settings.embedded_broker or not path.exists():
        return ""
    return f"; `lipspline serve` wrote the default tenant's key to {path} (export LIPSPLINE_API_KEY=$(cat {path}))"


def _unauthorized(detail: str) -> ProblemError:
    error = ProblemError(401, "Unauthorized", detail, kind="unauthorized")
    error.headers = {"WWW-Authenticate": 'Bearer realm="lipspline"'}
    return error


#: Reads ``Authorization: Bearer <key>`` and, being a FastAPI security dependency, declares the
#: ``BearerAuth`` scheme in OpenAPI on exactly the routes that take ``TenantId``. It never answers
#: by itself (auto_error=False: its own error would not be problem+json); ``current_tenant`` does.
bearer = HTTPBearer(
    scheme_name="BearerAuth",
    bearerFormat="lsk_ API key",
    description="An API key: `lipspline keys create --tenant NAME` (the embedded default writes one "
    "to `$LIPSPLINE_DATA_DIR/api-key`).",
    auto_error=False,
)


async def current_tenant(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str:
    """The tenant of the request's API key; 401 without a valid key, 429 above the key's rate.

    Async, so a key checked within the last second costs a dict lookup on the event loop; the
    database is asked (in a thread) only when that answer is stale.
    """
    # None: no header, another scheme, or an empty key (surrounding spaces are stripped)
    settings: Settings = request.app.state.settings
    if credentials is None:
        raise _unauthorized("Authorization: Bearer <API key> is required" + _where_the_key_is(settings))
    key = credentials.credentials
    verified_keys = request.app.state.verified_keys
    fresh, tenant = verified_keys.recent_answer(key)
    if not fresh:
        tenant = await run_in_threadpool(verified_keys.tenant_for, key)
    if tenant is None:
        raise _unauthorized("the API key is not valid (unknown or revoked)" + _where_the_key_is(settings))
    wait = request.app.state.rate_limiter.acquire(key)
    if wait > 0:
        error = ProblemError(429, "Too Many Requests", f"rate limit of {settings.rate_limit_per_s:g} requests/s "
                             f"per key exceeded; retry in {wait:.2f} s", kind="rate-limited")  # fmt: skip
        error.headers = {"Retry-After": request.app.state.rate_limiter.retry_after_header(wait)}
        raise error
    return tenant


TenantId = Annotated[str, Depends(current_tenant)]


def current_caller(
    tenant: TenantId, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str:
    """Who makes the request, as the registry records it: ``key:<the key's prefix>``.

    The prefix is what ``lipspline keys list`` shows and ``keys revoke`` accepts, so an
    operator can tell which key moved an alias; it is not enough to use the key.
    """
    assert credentials is not None  # TenantId has refused requests without a key
    return f"key:{credentials.credentials[:PREFIX_CHARS]}"


Caller = Annotated[str, Depends(current_caller)]
