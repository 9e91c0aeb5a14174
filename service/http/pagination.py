"""Cursor pagination of every ``/v1`` list: ``limit``, an opaque ``cursor``, ``next_cursor`` and ``Link``.

This is the HTTP side; the query (keyset, newest first) is the platform's
(``lipspline_platform/db/pagination.py``): a router passes a domain module's lister to
:func:`paged`, which hands it the page's :class:`Window` and makes the cursor and ``Link``.

Why keyset and not offset: a client that pages through jobs while new ones are submitted
must see each record once. An offset shifts under inserts (a record is shown twice, or
skipped); a keyset cursor says "after this record" and does not. Lists are ordered newest
first by ``(created_at, id)``, descending, so the order is total even when many records share
a timestamp (bulk uploads, a coarse clock): the id breaks every tie.

A cursor is the URL-safe base64 of ``[created_at ISO 8601, id]`` of the last record of the
page. It is opaque to clients (they pass back what they got); a cursor that does not decode
is a 400 naming the ``cursor`` parameter. The next page's URL is also sent as an RFC 8288
``Link: <...>; rel="next"`` header, the way generic HTTP clients follow pages.

Nothing a client sends reaches the database unless the database can represent it: a
time (a cursor's, or ``created_after``/``created_before``) must lie in the years 1-9999
once converted to UTC (``0001-01-01T00:00:00+14:00`` is year 0 in UTC: Python cannot
even convert it, and PostgreSQL would compare it with an error, not an answer); a
cursor's id must be of the type of the list's id column (PostgreSQL refuses to compare
text with an integer), a string of id characters or an integer within 64 bits (SQLite
refuses larger ones). Out of range, a cursor is a 400 ``bad-cursor`` and a time filter
a 422 naming it, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Query, Request, Response
from pydantic import AfterValidator

from lipspline_platform.db import pagination as db_pagination
from lipspline_platform.db.engine import Session
from lipspline_platform.db.pagination import ForeignCursorError, Listed, Rows, Window
from service.http.problems import ProblemError

if TYPE_CHECKING:
    from sqlalchemy import Select

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def encode_cursor(created_at: datetime, ident: str | int) -> str:
    """The opaque cursor that continues after the record ``(created_at, ident)``."""
    if created_at.tzinfo is None:  # SQLite hands back naive datetimes; every stored time is UTC
        created_at = created_at.replace(tzinfo=UTC)
    raw = json.dumps([created_at.astimezone(UTC).isoformat(), ident], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def bad_cursor(message: str) -> ProblemError:
    """400: a cursor this service did not make (or a corrupted one): the client must start over."""
    return ProblemError(400, "Bad Request", f"cursor: {message}; pass back the next_cursor of a list response",
                        kind="bad-cursor", errors=[{"field": "cursor", "message": message}])


#: a cursor's id, when the list's ids are strings: id characters (what ``new_id`` makes is 32 hex digits)
CURSOR_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
#: a cursor's id, when the list's ids are integers: what a 64-bit column holds
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def database_time(moment: datetime) -> datetime:
    """``moment`` in UTC (a naive time is read as UTC, like every stored time); ValueError when its UTC
    form falls outside the years 1-9999 that both databases (and Python) represent."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{moment.isoformat()} is outside the years 1-9999 in UTC") from None


def decode_cursor(cursor: str) -> tuple[datetime, str | int]:
    """``(created_at, id)`` of a cursor made by :func:`encode_cursor`, or a 400 ``bad-cursor``.

    The time is in UTC and within the years 1-9999; the id is a string of id characters or an
    integer within 64 bits (which of the two the list takes, the platform checks: :func:`paged`).
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, ident = json.loads(raw)
        moment = datetime.fromisoformat(created_at)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise bad_cursor("not a cursor of this service") from exc
    if moment.tzinfo is None:
        raise bad_cursor("not a cursor of this service")
    if isinstance(ident, bool) or not (
        (isinstance(ident, str) and CURSOR_ID.fullmatch(ident))
        or (isinstance(ident, int) and INT64_MIN <= ident <= INT64_MAX)
    ):
        raise bad_cursor("not a cursor of this service (its id is not an id)")
    try:
        return database_time(moment), ident
    except ValueError as exc:
        raise bad_cursor(f"not a cursor of this service ({exc})") from None


def _database_time(moment: datetime | None) -> datetime | None:
    return None if moment is None else database_time(moment)


#: a time filter: any ISO 8601 time whose UTC form lies in the years 1-9999 (422 naming the parameter otherwise)
TimeFilter = Annotated[datetime | None, AfterValidator(_database_time)]
CreatedAfter = Annotated[TimeFilter, Query(description="only records created at or after this time (ISO 8601)")]
CreatedBefore = Annotated[TimeFilter, Query(description="only records created before this time (ISO 8601)")]


@dataclass(frozen=True)
class PageRequest:
    """What the client asked for: at most ``limit`` records after ``cursor`` (the first page without one),
    created in ``[created_after, created_before)``; and where the next page's ``Link`` header goes."""

    limit: int
    cursor: str | None
    created_after: datetime | None
    created_before: datetime | None
    request: Request
    response: Response


def page_request(
    request: Request,
    response: Response,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"records per page (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=400, description="`next_cursor` of the previous page; omit it for the first page"),
    ] = None,
    created_after: CreatedAfter = None,
    created_before: CreatedBefore = None,
) -> PageRequest:
    return PageRequest(limit, cursor, created_after, created_before, request, response)


#: every list route's paging and creation-time filters, as one dependency
Page = Annotated[PageRequest, Depends(page_request)]


@dataclass(frozen=True)
class PageOf:
    """One page of rows, and the cursor of the next page (``None`` on the last one)."""

    rows: list[Any]
    next_cursor: str | None


def window_of(page: PageRequest) -> Window:
    """What the platform reads for ``page``: its size, creation-time bounds and the record its cursor
    continues after (a cursor that does not decode is a 400 ``bad-cursor`` here, before any query)."""
    after = decode_cursor(page.cursor) if page.cursor is not None else None
    return Window(page.limit, after, page.created_after, page.created_before)


def paged(page: PageRequest, fetch: Callable[[Window], Rows]) -> PageOf:
    """One page of a list: ``fetch`` (a domain module's lister, given the page's :class:`Window`) reads the
    rows newest first by ``(created_at, id)``; the next page's cursor and ``Link`` header are made here.

    One row more than the page is read to know whether a next page exists, so the last page
    says ``next_cursor: null`` rather than leaving the client to ask for an empty page.
    """
    window = window_of(page)
    try:
        listed = fetch(window)
    except ForeignCursorError:
        raise bad_cursor("not a cursor of this list (its id is of another kind)") from None
    if listed.next_after is None:
        return PageOf(listed.rows, None)
    found = PageOf(listed.rows, encode_cursor(*listed.next_after))
    _link_next(page, found.next_cursor)
    return found


def newest_first(session: Session, query: Select, page: PageRequest, table: type[Listed]) -> PageOf:
    """Run ``query`` (already filtered by the route) for one page of ``table``: :func:`paged` over the
    platform's :func:`lipspline_platform.db.pagination.newest_first` (the model routes build their query)."""
    return paged(page, lambda window: db_pagination.newest_first(session, query, window, table))


def _link_next(page: PageRequest, next_cursor: str) -> None:
    """The RFC 8288 ``Link: <next page>; rel="next"`` header: this URL, its filters kept, the new cursor."""
    url = page.request.url.remove_query_params("cursor").include_query_params(cursor=next_cursor)
    page.response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'


#: the ``Link`` header as the OpenAPI document states it on every list (``responses={200: LINK_HEADER}``)
LINK_HEADER: dict[str, Any] = {
    "headers": {
        "Link": {
            "description": 'RFC 8288: `<URL of the next page>; rel="next"`, absent on the last page',
            "required": False,
            "schema": {"type": "string"},
        }
    }
}
