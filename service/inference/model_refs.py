"""Model references: which model a request means, resolved once per request.

A route that uses a model accepts, where it used to take a model id:

* a model id (``5f0c6b2e...``): that model;
* ``name``, a bare registered name: its ``production`` alias if set, else its latest
  version (the rule the ``/v2`` routes have always used for ``{name}``);
* ``name@alias``: the version the alias points at *now*;
* ``name/versions/N``: version N of the registered model (``name%2Fversions%2FN`` too:
  the server decodes the path before matching, so both spellings reach the route).

Resolution reads the registry on every request and yields a model id; the model cache
stays keyed by model id, so moving an alias takes effect on the next request, in every
API process, with no restart and no cache to invalidate. A reference that resolves to
nothing (unknown name, alias or version, another tenant's) is a 404 that names it.

Every ``/v1/models/{ref}`` route goes through :data:`ResolvedModel` (or
:data:`ResolvedModelId`), and the ``/v2`` (Open Inference Protocol) routes, which name
models their own way (``{name}`` and ``{version}``), through :func:`resolve_oip`, which
hands anything but a registered name with a version to the same :func:`resolve`: one
resolver. The :class:`Resolved` answer says which registry entry a request went through, so
predict responses can name it (``model_id``, ``registered_name``, ``version`` and the
``X-LipSpline-Model-*`` headers).

A part that cannot name anything (an id not of the service's form, a name or an alias
outside their patterns, a version of more than 9 digits) is a 404 before any query, so a
hostile reference never reaches the database (NUL bytes are refused for every route by
``service/http/query_parameters.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, SecurityScopes
from sqlalchemy.orm import Session

from api_schemas.http import NAME_PATTERN
from api_schemas.registry import ALIAS_PATTERN
from lipspline_platform import registry
from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.tables import ModelRow
from service.http.problems import ProblemError, not_found
from service.security.deps import KeyTenant, bearer, current_principal
from service.security.ownership import is_id
from service.security.scopes import Scope

_VERSIONED = re.compile(r"^(?P<name>[^/@]+)/versions/(?P<version>[0-9]{1,9})$")
_ALIASED = re.compile(r"^(?P<name>[^/@]+)@(?P<alias>[^/@]+)$")
_NAME, _ALIAS = re.compile(NAME_PATTERN), re.compile(ALIAS_PATTERN)
_VERSION = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True)
class Resolved:
    """The model a reference names, and the registry entry it was reached through (None for an id)."""

    model_id: str
    name: str | None = None
    version: int | None = None


def unresolved(reference: str, why: str) -> ProblemError:
    return ProblemError(404, "Not Found", f"model reference {reference!r} does not resolve: {why}", kind="not-found")


def resolve(session: Session, tenant: str, reference: str) -> Resolved:
    """``reference`` (id, ``name``, ``name@alias`` or ``name/versions/N``) -> the tenant's model it names, or 404."""
    versioned, aliased = _VERSIONED.match(reference), _ALIASED.match(reference)
    if versioned is None and aliased is None:
        if "@" in reference or "/" in reference:
            raise unresolved(reference, "expected a model id, NAME, NAME@ALIAS or NAME/versions/N")
        if is_id(reference):
            model = session.get(ModelRow, reference)
            if model is None or model.tenant_id != tenant:
                raise not_found("model", reference)  # as an unknown id has always been answered
            return Resolved(model.id)
        return _bare_name(session, tenant, reference)
    match = versioned or aliased
    assert match is not None
    name = match["name"]
    # every part is checked before the first query: a hostile alias behind a valid name reads nothing either
    if aliased is not None and not _ALIAS.match(aliased["alias"]):
        raise unresolved(reference, f"{aliased['alias']!r} cannot be an alias")
    registered = registry.find_name(session, tenant, name) if _NAME.match(name) else None
    if registered is None:
        raise unresolved(reference, f"no registered model {name!r}")
    if versioned is not None:
        found = registry.find_version(session, registered, int(versioned["version"]))
        if found is None:
            raise unresolved(reference, f"{name!r} has no version {int(versioned['version'])}")
    else:
        alias = aliased["alias"]  # type: ignore[index]
        found = registry.alias_target(session, registered, alias)
        if found is None:
            raise unresolved(reference, f"{name!r} has no alias {alias!r}")
    return Resolved(found.model_id, registered.name, found.version)


def _bare_name(session: Session, tenant: str, name: str) -> Resolved:
    """A bare registered name: its ``production`` alias if set, else its latest version."""
    registered = registry.find_name(session, tenant, name) if _NAME.match(name) else None
    if registered is None:  # nothing has that id or that name: the same answer as an unknown id
        raise not_found("model", name)
    found = registry.alias_target(session, registered, registry.PRODUCTION) or registry.latest_version(
        session, registered
    )
    if found is None:
        raise unresolved(name, f"{name!r} has no versions yet")
    return Resolved(found.model_id, registered.name, found.version)


def resolve_oip(session: Session, tenant: str, name: str, version: str | None) -> Resolved:
    """``/v2/models/{name}[/versions/{version}]`` -> a model.

    Without ``version``, ``name`` is any model reference as :func:`resolve` reads it (a
    registered name: its ``production`` alias if set, else its latest version; a model id;
    ``name@alias``). With ``version``, ``name`` is a registered name and ``version`` one of
    its version numbers.
    """
    if not version:
        return resolve(session, tenant, name)
    number = int(version) if _VERSION.fullmatch(version) else None
    if number is None:  # checked before any query, as every part of a reference
        raise unresolved(f"{name}/versions/{version}", f"{version!r} cannot be a version number")
    registered = registry.find_name(session, tenant, name) if _NAME.match(name) else None
    if registered is None:
        raise unresolved(f"{name}/versions/{version}", f"no registered model {name!r}")
    found = registry.find_version(session, registered, number)
    if found is None:
        raise unresolved(f"{name}/versions/{version}", f"{name!r} has no version {version!r}")
    return Resolved(found.model_id, registered.name, found.version)


#: the ``{model_id:path}`` parameter of every ``/v1/models/{ref}`` route, as the OpenAPI document states it
ModelReference = Annotated[
    str,
    Path(description="a model id, or a reference: `NAME` (its `production` alias, else its latest version), "
         "`NAME@ALIAS`, `NAME/versions/N` (`/` may be sent as `%2F`)"),
]


async def _resolved_ref(request: Request, tenant: KeyTenant, model_id: ModelReference) -> Resolved:
    # The path parameter keeps its name, model_id, so the API's contract (and generated clients) stay as they
    # were; it is declared {model_id:path} so that NAME/versions/N, whose slashes arrive decoded, matches.
    # A model id needs no registry read: the model cache (or the route's own tenant check) checks the tenant.
    # Async, so that path costs nothing on the predict hot path; a reference reads the registry in a thread.
    # Anything else (a bare name included) goes through resolve(), which refuses a hostile reference before
    # any query. (a NUL byte never gets here: service/http/query_parameters.py refuses it for every route)
    return await _resolve_on_loop(request, tenant, model_id)


async def _resolve_on_loop(request: Request, tenant: str, model_id: str) -> Resolved:
    if is_id(model_id):
        return Resolved(model_id)
    return await run_in_threadpool(_resolve_reference, request.app.state.settings.resolved_database_url, tenant,
                                   model_id)


def _resolve_reference(database_url: str, tenant: str, reference: str) -> Resolved:
    with session_scope(database_url) as session:
        return resolve(session, tenant, reference)


async def _model_id_of_ref(resolved: Annotated[Resolved, Depends(_resolved_ref)]) -> str:
    return resolved.model_id


#: a route parameter: the model the path's ``{model_id:path}`` (an id or a reference) resolves to, and how
ResolvedModel = Annotated[Resolved, Depends(_resolved_ref)]


@dataclass(frozen=True)
class Target:
    """Who asks (the tenant of a key with the route's scope) and the model reference they sent, unresolved.

    The predict routes' one dependency: they read their body first (a streamed body over the
    limit is a 413 whatever it names), then :meth:`resolved` (an id costs no query).
    """

    tenant: str
    reference: str

    async def resolved(self, request: Request) -> Resolved:
        return await _resolve_on_loop(request, self.tenant, self.reference)


async def _target(
    request: Request,
    security_scopes: SecurityScopes,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    model_id: ModelReference,
) -> Target:
    # What PredictTenant + ResolvedModel declared, as one dependency instead of seven: FastAPI's
    # per-dependency bookkeeping was the largest share of a 1-row predict's time between the
    # socket and the served map (service/inference/answers.py). The key, its scope (checked before the
    # reference is looked at), and the rate bucket, as every scoped route.
    principal = await current_principal(request, security_scopes, credentials)
    return Target(principal.tenant_id, model_id)


#: a route parameter of the predict routes: a key with the ``predict`` scope and the ``{model_id:path}`` it
#: names (the OpenAPI document states it as ``PredictTenant`` + ``ResolvedModel`` did)
PredictTarget = Annotated[Target, Security(_target, scopes=[Scope.predict])]
#: a route parameter: the model id the path's ``{model_id:path}`` (an id or a reference) resolves to
ResolvedModelId = Annotated[str, Depends(_model_id_of_ref)]

#: the response headers that say which model answered (``served_by_headers``)
MODEL_ID_HEADER, MODEL_NAME_HEADER, MODEL_VERSION_HEADER = (
    "X-LipSpline-Model-Id", "X-LipSpline-Model-Name", "X-LipSpline-Model-Version")


#: the headers as the OpenAPI document states them on the predict routes (``responses={200: SERVED_BY_HEADERS}``)
SERVED_BY_HEADERS: dict = {
    "headers": {
        MODEL_ID_HEADER: {"description": "the model that answered (the id the reference resolved to)",
                          "required": True, "schema": {"type": "string"}},
        MODEL_NAME_HEADER: {"description": "the registered name the reference went through; absent when the "
                            "model was named by its id", "required": False, "schema": {"type": "string"}},
        MODEL_VERSION_HEADER: {"description": "the version of that name that answered; absent when the model "
                               "was named by its id", "required": False, "schema": {"type": "string"}},
    }
}


def served_by_headers(resolved: Resolved) -> dict[str, str]:
    """``X-LipSpline-Model-Id`` always; ``-Name`` and ``-Version`` when the request went through the registry."""
    headers = {MODEL_ID_HEADER: resolved.model_id}
    if resolved.name is not None and resolved.version is not None:
        headers[MODEL_NAME_HEADER] = resolved.name
        headers[MODEL_VERSION_HEADER] = str(resolved.version)
    return headers


def served_by_fields(resolved: Resolved) -> dict[str, str | int | None]:
    """The ``model_id``, ``registered_name`` and ``version`` members of a predict answer."""
    return {"model_id": resolved.model_id, "registered_name": resolved.name, "version": resolved.version}
