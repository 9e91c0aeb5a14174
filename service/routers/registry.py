"""``/v1/registered-models``: names, their numbered versions, aliases and the history of alias moves.

The rules (and the locking that makes them hold under concurrent requests) live in
``lipspline_platform/registry.py``; this module is HTTP: it parses, checks tenancy,
and turns a refused request into problem+json naming the field at fault. Every
handler runs in one transaction (``DbSession``), so a refused request writes nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse

from api_schemas.registry import (
    ALIAS_PATTERN,
    AliasEventList,
    AliasEventOut,
    AliasList,
    AliasMove,
    AliasOut,
    Lineage,
    RegisteredModelCreate,
    RegisteredModelList,
    RegisteredModelOut,
    VersionCreate,
    VersionList,
    VersionOut,
)
from api_schemas.timestamps import as_utc
from lipspline_platform import registry
from lipspline_platform.db.engine import Session
from lipspline_platform.db.tables import ModelVersionRow, RegisteredModelRow
from lipspline_platform.registry import RegistryError
from service.http.openapi_docs import problems
from service.http.pagination import LINK_HEADER, Page, paged
from service.http.problems import ProblemError
from service.security.deps import Caller, DbSession, ReadTenant, TrainTenant

router = APIRouter(prefix="/v1/registered-models", tags=["registry"])

NamePath = Annotated[str, Path(description="the registered model's name", max_length=100)]
AliasPath = Annotated[str, Path(description="an alias, e.g. `production`", max_length=64)]
VersionPath = Annotated[int, Path(description="a version number (1, 2, 3 ...)", ge=1)]

_UNKNOWN_NAME = (404, "no registered model of that name (for this tenant)")


def _problem(error: RegistryError) -> ProblemError:
    titles = {404: "Not Found", 409: "Conflict", 422: "Validation Error"}
    extra = {}
    if error.field is not None:
        extra = {"field": error.field, "errors": [{"field": error.field, "message": error.message}]}
    return ProblemError(error.status, titles.get(error.status, "Error"), error.message, kind=error.kind, **extra)


def _named(session: Session, tenant: str, name: str, *, lock: bool = False) -> RegisteredModelRow:
    try:
        return registry.lock_name(session, tenant, name) if lock else registry.get_name(session, tenant, name)
    except RegistryError as error:
        raise _problem(error) from error


def _registered_out(session: Session, row: RegisteredModelRow) -> RegisteredModelOut:
    return RegisteredModelOut(
        name=row.name,
        description=row.description,
        latest_version=row.last_version or None,
        aliases=registry.aliases_of(session, row),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _version_out(session: Session, registered: RegisteredModelRow, version: ModelVersionRow) -> VersionOut:
    model = registry.model_of(session, version)
    aliases = [alias for alias, number in registry.aliases_of(session, registered).items() if number == version.version]
    return VersionOut(
        name=registered.name,
        version=version.version,
        model_id=model.id,
        task=model.task,
        lipschitz_bound=model.certificate.get("certified"),
        aliases=aliases,
        created_by=version.created_by,
        created_at=as_utc(version.created_at),
        lineage=Lineage(model_id=model.id, job_id=model.job_id, dataset_id=model.dataset_id,
                        dataset_sha256=version.dataset_sha256, config=model.document["config"]),
    )


# ---- names -------------------------------------------------------------------------------------
@router.post(
    "",
    status_code=201,
    response_model=RegisteredModelOut,
    responses=problems((409, "a registered model of that name already exists (`name-taken`)")),
)
def create_registered_model(body: RegisteredModelCreate, session: DbSession, tenant: TrainTenant) -> JSONResponse:
    """A new, empty name; models are added to it as versions."""
    try:
        row = registry.create_name(session, tenant, body.name, body.description)
    except RegistryError as error:
        raise _problem(error) from error
    out = _registered_out(session, row).model_dump(mode="json")
    return JSONResponse(out, status_code=201, headers={"Location": f"/v1/registered-models/{row.name}"})


@router.get("", response_model=RegisteredModelList, responses={200: LINK_HEADER})
def list_registered_models(
    session: DbSession,
    tenant: ReadTenant,
    page: Page,
    name: Annotated[str | None, Query(max_length=100, description="only the registered model of this name")] = None,
) -> RegisteredModelList:
    """The tenant's registered models, newest first, a page at a time (``next_cursor``), filtered."""
    listed = paged(page, lambda window: registry.list_names(session, tenant, window, name=name))
    return RegisteredModelList(items=[_registered_out(session, row) for row in listed.rows],
                               next_cursor=listed.next_cursor)


@router.get("/{name}", response_model=RegisteredModelOut, responses=problems(_UNKNOWN_NAME))
def get_registered_model(name: NamePath, session: DbSession, tenant: ReadTenant) -> RegisteredModelOut:
    return _registered_out(session, _named(session, tenant, name))


@router.delete(
    "/{name}",
    status_code=204,
    responses=problems(_UNKNOWN_NAME, (409, "an alias still points into it and force is not set (`aliased`)")),
)
def delete_registered_model(
    name: NamePath,
    session: DbSession,
    tenant: TrainTenant,
    force: Annotated[bool, Query(description="delete even while aliases point into it")] = False,
) -> Response:
    """Remove the name, its versions, aliases and alias history; the trained models themselves stay."""
    registered = _named(session, tenant, name, lock=True)
    try:
        registry.delete_name(session, registered, force=force)
    except RegistryError as error:
        raise _problem(error) from error
    return Response(status_code=204)


# ---- versions ----------------------------------------------------------------------------------
@router.post(
    "/{name}/versions",
    status_code=201,
    response_model=VersionOut,
    responses=problems(
        (404, "no registered model of that name, or `model_id` names no model of this tenant"),
        (409, "the model is already a version of this name (`already-registered`)"),
    ),
)
def create_version(name: NamePath, body: VersionCreate, session: DbSession, tenant: TrainTenant,
                   caller: Caller) -> JSONResponse:
    """Add a trained model as the name's next version (numbered 1, 2, 3 ...; immutable)."""
    registered = _named(session, tenant, name, lock=True)
    model = registry.tenant_model(session, tenant, body.model_id)
    if model is None:
        raise ProblemError(404, "Not Found", f"model_id: model {body.model_id!r} does not exist", kind="not-found",
                           field="model_id", errors=[{"field": "model_id", "message": "no such model"}])
    try:
        version = registry.add_version(session, registered, model, caller)
    except RegistryError as error:
        raise _problem(error) from error
    out = _version_out(session, registered, version).model_dump(mode="json", by_alias=True)  # the config's `lambda`
    location = f"/v1/registered-models/{registered.name}/versions/{version.version}"
    return JSONResponse(out, status_code=201, headers={"Location": location})


@router.get("/{name}/versions", response_model=VersionList, responses={200: LINK_HEADER, **problems(_UNKNOWN_NAME)})
def list_versions(
    name: NamePath,
    session: DbSession,
    tenant: ReadTenant,
    page: Page,
) -> VersionList:
    """The name's versions, newest (highest number) first, a page at a time (``next_cursor``)."""
    registered = _named(session, tenant, name)
    listed = paged(page, lambda window: registry.list_versions(session, registered, window))
    return VersionList(items=[_version_out(session, registered, v) for v in listed.rows],
                       next_cursor=listed.next_cursor)


@router.get("/{name}/versions/{version}", response_model=VersionOut, responses=problems((404, "no such version")))
def get_version(name: NamePath, version: VersionPath, session: DbSession, tenant: ReadTenant) -> VersionOut:
    registered = _named(session, tenant, name)
    found = registry.find_version(session, registered, version)
    if found is None:
        raise ProblemError(404, "Not Found", f"registered model {name!r} has no version {version}", kind="not-found")
    return _version_out(session, registered, found)


# ---- aliases -----------------------------------------------------------------------------------
def _alias_out(registered: RegisteredModelRow, alias: str, version: ModelVersionRow) -> AliasOut:
    return AliasOut(name=registered.name, alias=alias, version=version.version, model_id=version.model_id,
                    reference=f"{registered.name}@{alias}")


@router.get("/{name}/aliases", response_model=AliasList, responses=problems(_UNKNOWN_NAME))
def list_aliases(name: NamePath, session: DbSession, tenant: ReadTenant) -> AliasList:
    registered = _named(session, tenant, name)
    items = []
    for alias in registry.aliases_of(session, registered):
        target = registry.alias_target(session, registered, alias)
        assert target is not None
        items.append(_alias_out(registered, alias, target))
    return AliasList(items=items)


@router.put(
    "/{name}/aliases/{alias}",
    response_model=AliasOut,
    responses=problems((404, "no registered model of that name, or no such `version` of it")),
)
def move_alias(name: NamePath, alias: AliasPath, body: AliasMove, session: DbSession, tenant: TrainTenant,
               caller: Caller) -> AliasOut:
    """Point the alias at a version, atomically: the next request that resolves ``name@alias`` gets it.

    Every move is recorded (``GET .../alias-events``); a move to the version it already names records nothing.
    """
    registered = _named(session, tenant, name, lock=True)
    try:
        target, _ = registry.move_alias(session, registered, alias, body.version, caller)
    except RegistryError as error:
        raise _problem(error) from error
    return _alias_out(registered, alias, target)


@router.delete("/{name}/aliases/{alias}", status_code=204, responses=problems((404, "no such name or alias")))
def remove_alias(name: NamePath, alias: AliasPath, session: DbSession, tenant: TrainTenant, caller: Caller) -> Response:
    registered = _named(session, tenant, name, lock=True)
    try:
        registry.remove_alias(session, registered, alias, caller)
    except RegistryError as error:
        raise _problem(error) from error
    return Response(status_code=204)


@router.get("/{name}/alias-events", response_model=AliasEventList, responses=problems(_UNKNOWN_NAME))
def list_alias_events(
    name: NamePath,
    session: DbSession,
    tenant: ReadTenant,
    alias: Annotated[str | None, Query(description="only this alias' moves", pattern=ALIAS_PATTERN)] = None,
) -> AliasEventList:
    """Every alias move under the name, oldest first: who, when, from which version to which."""
    registered = _named(session, tenant, name)
    events = registry.alias_events(session, registered, alias)
    return AliasEventList(items=[AliasEventOut(alias=e.alias, from_version=e.from_version, to_version=e.to_version,
                                               actor=e.actor, at=e.at) for e in events])
