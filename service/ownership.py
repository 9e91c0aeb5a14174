"""Tenant-scoped row access: another tenant's id answers exactly like an unknown id (404)."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.orm import Session

from service.problems import not_found

Row = TypeVar("Row")


def owned(session: Session, table: type[Row], ident: str, tenant_id: str, what: str, *, lock: bool = False) -> Row:
    row = session.get(table, ident, with_for_update=lock)
    if row is None or row.tenant_id != tenant_id:  # type: ignore[attr-defined]
        raise not_found(what, ident)
    return row
