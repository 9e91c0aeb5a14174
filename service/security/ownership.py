"""Tenant-scoped row access: another tenant's id answers exactly like an unknown id (404).

The lookup is the platform's (``lipspline_platform/db/ownership.py``: an id not of the form the
service makes names no row, so it is a 404 before any query); this module turns "nothing" into
the API's 404 problem. Routers call a domain module's finder and pass its answer to
:func:`found`; :func:`owned` does both for a table (the model routes).
"""

from __future__ import annotations

from typing import TypeVar

from lipspline_platform.db.engine import Session
from lipspline_platform.db.ownership import ID_FORM, find_owned, is_id
from service.http.problems import not_found

__all__ = ["ID_FORM", "found", "is_id", "owned"]

Row = TypeVar("Row")


def found(row: Row | None, what: str, ident: str) -> Row:
    """``row``, or the 404 naming ``what`` and ``ident`` when the lookup found nothing (or another tenant's)."""
    if row is None:
        raise not_found(what, ident)
    return row


def owned(session: Session, table: type[Row], ident: str, tenant_id: str, what: str, *, lock: bool = False) -> Row:
    return found(find_owned(session, table, ident, tenant_id, lock=lock), what, ident)
