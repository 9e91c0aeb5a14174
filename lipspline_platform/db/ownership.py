"""Tenant-scoped row lookup: another tenant's row is found exactly as an unknown one is (not at all).

An id that is not of the form the platform makes (:func:`lipspline_platform.db.ids.new_id`: 32
lowercase hex digits) names no row, so it finds nothing before any query: nothing a client puts
in a path (a NUL byte, 10**30, a kilobyte of text) reaches the database as an id, where
PostgreSQL would refuse some of it with an error instead of an empty answer. The API turns
"nothing" into its 404 (``service/security/ownership.py``).
"""

from __future__ import annotations

import re
from typing import TypeVar

from sqlalchemy.orm import Session

Row = TypeVar("Row")
#: what ``new_id`` makes (uuid4 hex)
ID_FORM = re.compile(r"[0-9a-f]{32}")


def is_id(value: str) -> bool:
    """Whether ``value`` has the form of an id the platform made (it may still name no row)."""
    return ID_FORM.fullmatch(value) is not None


def find_owned(session: Session, table: type[Row], ident: str, tenant_id: str, *, lock: bool = False) -> Row | None:
    """``table``'s row ``ident`` if it is ``tenant_id``'s (locked ``FOR UPDATE`` with ``lock``), else None."""
    if not is_id(ident):
        return None
    row = session.get(table, ident, with_for_update=lock)
    if row is None or row.tenant_id != tenant_id:  # type: ignore[attr-defined]
        return None
    return row
