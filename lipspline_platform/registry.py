"""The model registry's writes and lookups: names, numbered versions, aliases and their history.

Used by the API (``service/routers/registry.py``) and by ``lifecycle.succeed``, which
registers a job's model (``register_as``) in the transaction that stores it.

Concurrency: every write under a name starts with :func:`lock_name`, one ``UPDATE`` of the
``registered_models`` row. That statement takes PostgreSQL's row lock and SQLite's write
lock before anything is read, so two writers under one name run one after the other on both
databases: version numbers come from the row's counter (1, 2, 3 ... with no gap or
duplicate), and an alias move reads the alias it replaces under the same lock. The unique
constraints (name per tenant, version number per name, model per name) are the backstop.

Every write that adds a version or moves an alias also writes its webhook event
(``registry.version_created``, ``registry.alias_moved``) to the outbox, in the same
transaction: whichever way the change is made (the API, a job's or a sweep's ``register_as``).

Functions here raise :class:`RegistryError` naming the request field at fault; the API turns
it into problem+json. Nothing is written before a check fails, and the caller's transaction
rolls back on the error, so a refused request leaves the registry as it was.
"""

from __future__ import annotations

import re

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from api_schemas.registry import ALIAS_PATTERN, NAME_PATTERN
from api_schemas.timestamps import utcnow
from api_schemas.webhook_events import AliasMovedEvent, VersionCreatedEvent
from lipspline_platform.db.ids import new_id
from lipspline_platform.db.pagination import Rows, Window, list_owned
from lipspline_platform.db.tables import (
    AliasEventRow,
    DatasetRow,
    ModelAliasRow,
    ModelRow,
    ModelVersionRow,
    RegisteredModelRow,
)
from lipspline_platform.webhooks import outbox

_MODEL_ID = re.compile(r"^[0-9a-fA-F]{32}$")  # any case: ids are compared case-sensitively nowhere a user sees
#: the alias a bare name resolves to on /v2 (else its latest version)
PRODUCTION = "production"


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a registered model's name, or None if it can."""
    if not re.fullmatch(NAME_PATTERN, name):
        return "must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"
    if _MODEL_ID.fullmatch(name):
        return "must not look like a model id (32 hex digits)"
    return None


class RegistryError(Exception):
    """A refused registry request: HTTP-like ``status``, the ``field`` at fault, a message naming it."""

    def __init__(self, status: int, kind: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.field = status, kind, message, field


# ---- reads -------------------------------------------------------------------------------------
def find_name(session: Session, tenant_id: str, name: str) -> RegisteredModelRow | None:
    query = select(RegisteredModelRow).where(RegisteredModelRow.tenant_id == tenant_id,
                                             RegisteredModelRow.name == name)
    return session.scalars(query).one_or_none()


def get_name(session: Session, tenant_id: str, name: str) -> RegisteredModelRow:
    found = find_name(session, tenant_id, name)
    if found is None:
        raise RegistryError(404, "not-found", f"registered model {name!r} does not exist", "name")
    return found


def find_version(session: Session, registered: RegisteredModelRow, version: int) -> ModelVersionRow | None:
    query = select(ModelVersionRow).where(ModelVersionRow.registered_model_id == registered.id,
                                          ModelVersionRow.version == version)
    return session.scalars(query).one_or_none()


def list_names(session: Session, tenant_id: str, window: Window, *, name: str | None = None) -> Rows:
    """One window of the tenant's registered models (only the one called ``name``, when given), newest first."""
    where = [] if name is None else [RegisteredModelRow.name == name]
    return list_owned(session, RegisteredModelRow, window, tenant_id=tenant_id, where=where)


def list_versions(session: Session, registered: RegisteredModelRow, window: Window) -> Rows:
    """One window of the name's versions, newest (highest number) first."""
    where = [ModelVersionRow.registered_model_id == registered.id]
    return list_owned(session, ModelVersionRow, window, tenant_id=None, where=where)


def tenant_model(session: Session, tenant_id: str, model_id: str) -> ModelRow | None:
    """The trained model a new version names, if it is the tenant's (looked up by the id as given)."""
    model = session.get(ModelRow, model_id)
    return model if model is not None and model.tenant_id == tenant_id else None


def model_of(session: Session, version: ModelVersionRow) -> ModelRow:
    """The trained model a version is (``model_versions.model_id`` is a foreign key, ON DELETE CASCADE)."""
    model = session.get(ModelRow, version.model_id)
    assert model is not None
    return model


def latest_version(session: Session, registered: RegisteredModelRow) -> ModelVersionRow | None:
    query = (
        select(ModelVersionRow)
        .where(ModelVersionRow.registered_model_id == registered.id)
        .order_by(ModelVersionRow.version.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def versions_of(session: Session, registered: RegisteredModelRow) -> list[ModelVersionRow]:
    query = select(ModelVersionRow).where(ModelVersionRow.registered_model_id == registered.id)
    return list(session.scalars(query.order_by(ModelVersionRow.version)))


def aliases_of(session: Session, registered: RegisteredModelRow) -> dict[str, int]:
    """alias -> version number."""
    query = (
        select(ModelAliasRow.alias, ModelVersionRow.version)
        .join(ModelVersionRow, ModelVersionRow.id == ModelAliasRow.version_id)
        .where(ModelAliasRow.registered_model_id == registered.id)
        .order_by(ModelAliasRow.alias)
    )
    return {alias: version for alias, version in session.execute(query)}


def _version_of_model(session: Session, registered: RegisteredModelRow, model: ModelRow) -> ModelVersionRow | None:
    query = select(ModelVersionRow).where(
        ModelVersionRow.registered_model_id == registered.id, ModelVersionRow.model_id == model.id
    )
    return session.scalars(query).one_or_none()


def alias_target(session: Session, registered: RegisteredModelRow, alias: str) -> ModelVersionRow | None:
    query = (
        select(ModelVersionRow)
        .join(ModelAliasRow, ModelVersionRow.id == ModelAliasRow.version_id)
        .where(ModelAliasRow.registered_model_id == registered.id, ModelAliasRow.alias == alias)
    )
    return session.scalars(query).one_or_none()


def alias_events(session: Session, registered: RegisteredModelRow, alias: str | None = None) -> list[AliasEventRow]:
    query = select(AliasEventRow).where(AliasEventRow.registered_model_id == registered.id)
    if alias is not None:
        query = query.where(AliasEventRow.alias == alias)
    return list(session.scalars(query.order_by(AliasEventRow.id)))


def registrations_of(session: Session, model_ids: list[str]) -> dict[str, list[tuple[str, int, list[str]]]]:
    """model id -> [(registered name, version, aliases pointing at that version now)], by name.

    Two queries whatever the number of models (a page of ``GET /v1/models``): the versions, then their aliases.
    """
    if not model_ids:
        return {}
    versions = session.execute(
        select(ModelVersionRow.id, ModelVersionRow.model_id, RegisteredModelRow.name, ModelVersionRow.version)
        .join(RegisteredModelRow, RegisteredModelRow.id == ModelVersionRow.registered_model_id)
        .where(ModelVersionRow.model_id.in_(model_ids))
        .order_by(RegisteredModelRow.name, ModelVersionRow.version)
    ).all()
    aliases: dict[str, list[str]] = {}
    if versions:
        query = (
            select(ModelAliasRow.version_id, ModelAliasRow.alias)
            .where(ModelAliasRow.version_id.in_([row.id for row in versions]))
            .order_by(ModelAliasRow.alias)
        )
        for version_id, alias in session.execute(query):
            aliases.setdefault(version_id, []).append(alias)
    found: dict[str, list[tuple[str, int, list[str]]]] = {}
    for version_id, model_id, name, number in versions:
        found.setdefault(model_id, []).append((name, number, aliases.get(version_id, [])))
    return found


# ---- writes ------------------------------------------------------------------------------------
def create_name(session: Session, tenant_id: str, name: str, description: str | None) -> RegisteredModelRow:
    problem = name_problem(name)
    if problem is not None:
        raise RegistryError(422, "validation-error", f"name: {problem}", "name")
    if find_name(session, tenant_id, name) is not None:
        raise RegistryError(409, "name-taken", f"name: a registered model {name!r} already exists", "name")
    now = utcnow()
    row = RegisteredModelRow(id=new_id(), tenant_id=tenant_id, name=name, description=description, last_version=0,
                             created_at=now, updated_at=now)
    session.add(row)
    session.flush()  # a concurrent create of the same name fails here, on the unique constraint
    return row


def lock_name(session: Session, tenant_id: str, name: str) -> RegisteredModelRow:
    """The registered model, locked for writing until the transaction ends (see the module docstring)."""
    touched = session.execute(
        update(RegisteredModelRow)
        .where(RegisteredModelRow.tenant_id == tenant_id, RegisteredModelRow.name == name)
        # a write that changes nothing: it takes the locks; updated_at is set by the writes that change something
        .values(last_version=RegisteredModelRow.last_version)
        .returning(RegisteredModelRow.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if touched is None:
        raise RegistryError(404, "not-found", f"registered model {name!r} does not exist", "name")
    registered = session.get(RegisteredModelRow, touched, populate_existing=True)
    assert registered is not None
    return registered


def add_version(session: Session, registered: RegisteredModelRow, model: ModelRow, created_by: str) -> ModelVersionRow:
    """``model`` as the next version of ``registered`` (locked by :func:`lock_name` in this transaction).

    The caller has checked that the model belongs to the registered model's tenant.
    """
    existing = _version_of_model(session, registered, model)
    if existing is not None:
        raise RegistryError(409, "already-registered", f"model_id: model {model.id!r} is already version "
                            f"{existing.version} of {registered.name!r}", "model_id")
    number = session.execute(
        update(RegisteredModelRow)
        .where(RegisteredModelRow.id == registered.id)
        .values(last_version=RegisteredModelRow.last_version + 1, updated_at=utcnow())
        .returning(RegisteredModelRow.last_version)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    registered.last_version = number
    sha256 = None
    if model.dataset_id is not None:
        sha256 = session.scalar(select(DatasetRow.sha256).where(DatasetRow.id == model.dataset_id))
    row = ModelVersionRow(id=new_id(), registered_model_id=registered.id, version=number, model_id=model.id,
                          dataset_sha256=sha256, created_by=created_by, created_at=utcnow())
    session.add(row)
    session.flush()
    outbox.enqueue_event(session, tenant_id=registered.tenant_id, event=VersionCreatedEvent(
        name=registered.name, version=number, model_id=model.id, reference=f"{registered.name}/versions/{number}",
        created_by=created_by, created_at=row.created_at))
    return row


def _announce_alias(session: Session, registered: RegisteredModelRow, event: AliasEventRow,
                    model_id: str | None) -> None:
    """The alias history's new entry as a ``registry.alias_moved`` webhook event, in the caller's transaction."""
    outbox.enqueue_event(session, tenant_id=registered.tenant_id, event=AliasMovedEvent(
        name=registered.name, alias=event.alias, from_version=event.from_version, to_version=event.to_version,
        model_id=model_id, reference=f"{registered.name}@{event.alias}", actor=event.actor, at=event.at))


def move_alias(
    session: Session, registered: RegisteredModelRow, alias: str, version: int, actor: str
) -> tuple[ModelVersionRow, AliasEventRow | None]:
    """Point ``alias`` at ``version`` (``registered`` locked by :func:`lock_name`); records the move.

    Moving an alias to the version it already names changes nothing and records nothing.
    """
    if not re.fullmatch(ALIAS_PATTERN, alias):
        raise RegistryError(422, "validation-error", "alias: must be 1-64 letters, digits, '.', '_' or '-', "
                            "starting with a letter", "alias")
    target = find_version(session, registered, version)
    if target is None:
        raise RegistryError(404, "not-found", f"version: {registered.name!r} has no version {version}", "version")
    current = session.get(ModelAliasRow, (registered.id, alias))
    previous = None
    if current is not None:
        if current.version_id == target.id:
            return target, None
        previous = session.scalar(select(ModelVersionRow.version).where(ModelVersionRow.id == current.version_id))
        current.version_id, current.updated_at = target.id, utcnow()
    else:
        session.add(ModelAliasRow(registered_model_id=registered.id, alias=alias, version_id=target.id,
                                  updated_at=utcnow()))
    event = AliasEventRow(registered_model_id=registered.id, alias=alias, from_version=previous,
                          to_version=version, actor=actor, at=utcnow())
    session.add(event)
    registered.updated_at = event.at
    session.flush()
    _announce_alias(session, registered, event, target.model_id)
    return target, event


def remove_alias(session: Session, registered: RegisteredModelRow, alias: str, actor: str) -> AliasEventRow:
    """Unset ``alias`` (``registered`` locked by :func:`lock_name`); records the removal."""
    current = session.get(ModelAliasRow, (registered.id, alias))
    if current is None:
        raise RegistryError(404, "not-found", f"alias: {registered.name!r} has no alias {alias!r}", "alias")
    previous = session.scalar(select(ModelVersionRow.version).where(ModelVersionRow.id == current.version_id))
    session.delete(current)
    event = AliasEventRow(registered_model_id=registered.id, alias=alias, from_version=previous, to_version=None,
                          actor=actor, at=utcnow())
    session.add(event)
    registered.updated_at = event.at
    session.flush()
    _announce_alias(session, registered, event, None)
    return event


def delete_name(session: Session, registered: RegisteredModelRow, *, force: bool) -> None:
    """Remove the name with its versions, aliases and history (the models themselves stay).

    Refused (409) while an alias points into it, unless ``force``: an alias is what
    serving reads, so deleting under it would break live references.
    """
    aliases = aliases_of(session, registered)
    if aliases and not force:
        named = ", ".join(f"{alias} -> {version}" for alias, version in aliases.items())
        raise RegistryError(409, "aliased", f"registered model {registered.name!r} still has aliases ({named}); "
                            "remove them or pass force=true", "force")
    for table in (AliasEventRow, ModelAliasRow, ModelVersionRow):
        session.execute(delete(table).where(table.registered_model_id == registered.id))
    session.execute(delete(RegisteredModelRow).where(RegisteredModelRow.id == registered.id))


def register_job_model(session: Session, tenant_id: str, name: str, model: ModelRow, job_id: str) -> int | None:
    """``lifecycle.succeed``'s registration: the model as the next version of ``name``.

    None when the name was deleted after the job was submitted (the model is kept; the
    job still succeeds) or the model is already a version of it (a redelivered job).
    """
    try:
        registered = lock_name(session, tenant_id, name)
    except RegistryError:
        return None
    existing = _version_of_model(session, registered, model)
    if existing is not None:
        return existing.version
    return add_version(session, registered, model, f"job:{job_id}").version
