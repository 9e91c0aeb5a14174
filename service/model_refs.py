"""Model references: which model a request means, resolved once per request.

A route that uses a model accepts, where it used to take a model id:

* a model id (``5f0c6b2e...``): that model;
* ``name@alias``: the version the alias points at *now*;
* ``name/versions/N``: version N of the registered model (``name%2Fversions%2FN`` too:
  the server decodes the path before matching, so both spellings reach the route).

Resolution reads the registry on every request and yields a model id; the model cache
stays keyed by model id, so moving an alias takes effect on the next request, in every
API process, with no restart and no cache to invalidate. A reference that resolves to
nothing (unknown name, alias or version, another tenant's) is a 404 that names it.

The ``/v2`` (Open Inference Protocol) routes name models their own way, ``{name}`` and
``{version}``; :func:`resolve_oip` maps those onto the same registry.

A part that cannot name anything (an id not of the service's form, a name or an alias
outside their patterns, a version of more than 9 digits) is a 404 before any query, so a
hostile reference never reaches the database (NUL bytes are refused for every route by
``service/query_parameters.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from api_schemas.http import NAME_PATTERN
from api_schemas.registry import ALIAS_PATTERN
from lipspline_platform import registry
from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.tables import ModelRow
from service.deps import KeyTenant
from service.ownership import is_id
from service.problems import ProblemError

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
    """``reference`` (id, ``name@alias`` or ``name/versions/N``) -> the tenant's model it names, or 404."""
    versioned, aliased = _VERSIONED.match(reference), _ALIASED.match(reference)
    if versioned is None and aliased is None:
        if "@" in reference or "/" in reference:
            raise unresolved(reference, "expected a model id, NAME@ALIAS or NAME/versions/N")
        model = session.get(ModelRow, reference) if is_id(reference) else None
        if model is None or model.tenant_id != tenant:
            raise unresolved(reference, "no model with that id")
        return Resolved(model.id)
    match = versioned or aliased
    assert match is not None
    name = match["name"]
    registered = registry.find_name(session, tenant, name) if _NAME.match(name) else None
    if registered is None:
        raise unresolved(reference, f"no registered model {name!r}")
    if versioned is not None:
        found = registry.find_version(session, registered, int(versioned["version"]))
        if found is None:
            raise unresolved(reference, f"{name!r} has no version {int(versioned['version'])}")
    else:
        alias = aliased["alias"]  # type: ignore[index]
        found = registry.alias_target(session, registered, alias) if _ALIAS.match(alias) else None
        if found is None:
            raise unresolved(reference, f"{name!r} has no alias {aliased['alias']!r}")  # type: ignore[index]
    return Resolved(found.model_id, registered.name, found.version)


def resolve_oip(session: Session, tenant: str, name: str, version: str | None) -> Resolved:
    """``/v2/models/{name}[/versions/{version}]`` -> a model.

    ``name`` is a registered name (without ``version``: its ``production`` alias if set,
    else its latest version; with ``version``: that version number), or a model
    reference as :func:`resolve` reads it (a model id, ``name@alias``), which has no versions.
    """
    registered = registry.find_name(session, tenant, name) if _NAME.match(name) else None
    if registered is None:
        if version:
            raise unresolved(f"{name}/versions/{version}", f"no registered model {name!r}")
        return resolve(session, tenant, name)
    if version:
        number = int(version) if _VERSION.fullmatch(version) else None
        found = registry.find_version(session, registered, number) if number is not None else None
        if found is None:
            raise unresolved(f"{name}/versions/{version}", f"{name!r} has no version {version!r}")
    else:
        found = registry.alias_target(session, registered, registry.PRODUCTION) or registry.latest_version(
            session, registered
        )
        if found is None:
            raise unresolved(name, f"{name!r} has no versions yet")
    return Resolved(found.model_id, registered.name, found.version)


async def _model_id_of_ref(
    request: Request,
    tenant: KeyTenant,
    model_id: Annotated[
        str, Path(description="a model id, or a reference: `NAME@ALIAS`, `NAME/versions/N` (`/` may be sent as `%2F`)")
    ],
) -> str:
    # The path parameter keeps its name, model_id, so the API's contract (and generated clients) stay as they
    # were; it is declared {model_id:path} so that NAME/versions/N, whose slashes arrive decoded, matches.
    # A plain model id needs no registry read: the model cache checks the tenant when it loads.
    # Async, so that path costs nothing on the predict hot path; a reference reads the registry in a thread.
    # (a NUL byte never gets here: service/query_parameters.py refuses it for every route)
    if "@" not in model_id and "/" not in model_id:
        return model_id
    return await run_in_threadpool(_resolve_reference, request.app.state.settings.resolved_database_url, tenant,
                                   model_id)  # fmt: skip


def _resolve_reference(database_url: str, tenant: str, reference: str) -> str:
    with session_scope(database_url) as session:
        return resolve(session, tenant, reference).model_id


#: a route parameter: the model id the path's ``{model_id:path}`` (an id or a reference) resolves to
ResolvedModelId = Annotated[str, Depends(_model_id_of_ref)]
