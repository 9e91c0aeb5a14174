"""Tenant-scoped row access: another tenant's id answers exactly like an unknown id (404).

An id that is not of the form the service makes (``lipspline_platform.db.ids.new_id``: 32
lowercase hex digits) names no row, so it is a 404 before any query: nothing a client puts
in a path (a NUL byte, 10**30, a kilobyte of text) reaches the database as an id, where
PostgreSQL would refuse some of it with an error instead of an empty answer.
"""

from __future__ import annotations

import re
from typing import TypeVar

from sqlalchemy.orm import Session

from service.problems import not_found

Row = TypeVar("Row")
#: what ``new_id`` makes (uuid4 hex)
ID_FORM = re.compile(r"[0-9a-f]{32}")


def is_id(value: str) -> bool:
    """Whether ``value`` has the form of an id the service made (it may still name no row)."""
    return ID_FORM.fullmatch(value) is not None


def owned(session: Session, table: type[Row], ident: str, tenant_id: str, what: str, *, lock: bool = False) -> Row:
    if not is_id(ident):
        raise not_found(what, ident)
    row = session.get(table, ident, with_for_update=lock)
    if row is None or row.tenant_id != tenant_id:  # type: ignore[attr-defined]
        raise not_found(what, ident)
    return row
