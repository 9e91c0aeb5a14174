"""Names, tags and descriptions of datasets, jobs, models and sweeps: writing them and filtering by them.

A resource's ``tags`` column is the truth (the list, in order); ``resource_tags`` holds one
row per (kind, tag, resource) as its index, so the lists' ``?tag=`` filter is a plain
``IN`` subquery on SQLite and PostgreSQL alike. Every write of tags goes through
:func:`set_tags`, which writes both in the caller's transaction; :func:`forget` removes the
index rows of a deleted resource. The rules of the values are ``api_schemas/labels.py``'s:
callers pass values already validated there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, delete, select
from sqlalchemy.orm import Session

from lipspline_platform.db.tables import DatasetRow, JobRow, ModelRow, ResourceTagRow, SweepRow

Kind = Literal["dataset", "job", "model", "sweep"]
KINDS: dict[Kind, type] = {"dataset": DatasetRow, "job": JobRow, "model": ModelRow, "sweep": SweepRow}
#: what a dataset is called when it has no name of its own (``DatasetCreate``'s default)
DEFAULT_DATASET_NAME = "dataset"


def set_tags(session: Session, kind: Kind, row: Any, tags: Sequence[str]) -> None:
    """Give ``row`` exactly ``tags`` (repeats kept once, order kept), its index rows included."""
    tags = list(dict.fromkeys(tags))
    before = set(row.tags or ())
    row.tags = tags
    gone = before - set(tags)
    if gone:
        session.execute(delete(ResourceTagRow).where(ResourceTagRow.kind == kind,
                                                     ResourceTagRow.resource_id == row.id,
                                                     ResourceTagRow.tag.in_(gone)))
    session.add_all(ResourceTagRow(kind=kind, tag=tag, resource_id=row.id) for tag in tags if tag not in before)


def label(session: Session, kind: Kind, row: Any, *, name: str | None, tags: Sequence[str],
          description: str | None) -> None:
    """A new resource's labels (``row`` has its id; it has no tags yet)."""
    row.name, row.description = name, description
    row.tags = []
    set_tags(session, kind, row, tags)


def apply_changes(session: Session, kind: Kind, row: Any, changes: dict[str, Any]) -> None:
    """``PATCH`` semantics: a member absent from ``changes`` is unchanged; ``None`` clears name or description.

    A dataset always has a name: clearing it gives back the default one.
    """
    if "name" in changes:
        name = changes["name"]
        row.name = DEFAULT_DATASET_NAME if name is None and kind == "dataset" else name
    if "description" in changes:
        row.description = changes["description"]
    if "tags" in changes:
        set_tags(session, kind, row, changes["tags"] or [])


def change(session: Session, kind: Kind, row: Any, changes: dict[str, Any]) -> None:
    """:func:`apply_changes`, flushed: a value the database refuses is refused in the caller's transaction, now."""
    apply_changes(session, kind, row, changes)
    session.flush()


def forget(session: Session, kind: Kind, resource_id: str) -> None:
    """Remove the tag index rows of a resource being deleted."""
    index = ResourceTagRow
    session.execute(delete(index).where(index.kind == kind, index.resource_id == resource_id))


def conditions(kind: Kind, *, name: str | None = None, tags: Sequence[str] | None = None) -> list[ColumnElement[bool]]:
    """The ``where`` conditions that keep the kind's rows called exactly ``name`` that carry every one of ``tags``."""
    table = KINDS[kind]
    found: list[ColumnElement[bool]] = []
    if name is not None:
        found.append(table.name == name)
    for tag in dict.fromkeys(tags or ()):
        carrying = select(ResourceTagRow.resource_id).where(ResourceTagRow.kind == kind, ResourceTagRow.tag == tag)
        found.append(table.id.in_(carrying))
    return found


def filtered(query: Select, kind: Kind, *, name: str | None = None, tags: Sequence[str] | None = None) -> Select:
    """``query`` (over the kind's table) narrowed to rows called exactly ``name`` that carry every one of ``tags``."""
    for condition in conditions(kind, name=name, tags=tags):
        query = query.where(condition)
    return query
