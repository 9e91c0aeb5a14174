"""Keyset pages of a tenant's records, newest first by ``(created_at, id)``: the query side of every list.

The API (``service/http/pagination.py``) owns the HTTP side: the ``limit``/``cursor`` parameters, the
opaque cursor's encoding and its ``Link`` header. It hands a domain module a :class:`Window`
(the page's size, the record it continues after, the creation-time bounds); the domain module
names its table and filters and calls :func:`list_owned` (or :func:`newest_first` with a query
of its own). Ordered by ``(created_at, id)`` descending, the order is total even when many
records share a timestamp: the id breaks every tie.

One row more than the page is read to know whether a next page exists, so the last page says
so rather than leaving the client to ask for an empty one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session


class Listed(Protocol):
    """A table a list pages through: ordered by ``(created_at, id)``."""

    created_at: InstrumentedAttribute
    id: InstrumentedAttribute


@dataclass(frozen=True)
class Window:
    """At most ``limit`` records after the record ``after`` (``(created_at, id)``; the first page without
    one), created in ``[created_after, created_before)``. Times are UTC (naive ones are read as UTC)."""

    limit: int
    after: tuple[datetime, str | int] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class Rows:
    """One page of rows, and ``(created_at, id)`` of its last row when a next page exists (None on the last)."""

    rows: list[Any]
    next_after: tuple[datetime, str | int] | None


class ForeignCursorError(ValueError):
    """The window continues after an id of another kind than the table's (a cursor of another list)."""


def newest_first(session: Session, query: Select, window: Window, table: type[Listed]) -> Rows:
    """Run ``query`` (over ``table``, already filtered) for one window, newest first by ``(created_at, id)``."""
    created_at, ident = table.created_at, table.id
    if window.created_after is not None:
        query = query.where(created_at >= _utc(window.created_after))
    if window.created_before is not None:
        query = query.where(created_at < _utc(window.created_before))
    if window.after is not None:
        after_time, after_id = window.after
        if not isinstance(after_id, _id_type(table)):
            raise ForeignCursorError("its id is of another kind")
        query = query.where(or_(created_at < after_time, and_(created_at == after_time, ident < after_id)))
    rows = list(session.scalars(query.order_by(created_at.desc(), ident.desc()).limit(window.limit + 1)))
    if len(rows) <= window.limit:
        return Rows(rows, None)
    rows = rows[: window.limit]
    return Rows(rows, (rows[-1].created_at, rows[-1].id))


def list_owned(
    session: Session, table: type[Listed], window: Window, *, tenant_id: str | None,
    where: Iterable[ColumnElement[bool]] = (),
) -> Rows:
    """One window of ``table``'s rows of ``tenant_id`` (every row when None: a list scoped otherwise, by
    ``where``), narrowed by the domain's ``where`` conditions."""
    query = select(table)
    if tenant_id is not None:
        query = query.where(table.tenant_id == tenant_id)  # type: ignore[attr-defined]
    for condition in where:
        query = query.where(condition)
    return newest_first(session, query, window, table)


def _utc(moment: datetime) -> datetime:
    """Naive filter times are read as UTC, like every stored time."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _id_type(table: type[Listed]) -> type:
    """The Python type of the table's id column (``str`` for the ids ``new_id`` makes)."""
    try:
        return table.id.type.python_type
    except (AttributeError, NotImplementedError):
        return str
