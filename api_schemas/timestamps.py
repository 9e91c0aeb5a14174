"""UTC time, one spelling for the whole project: ``utcnow()`` to stamp, ``as_utc()`` to read back.

SQLite drops the zone of stored timestamps (every timestamp LipSpline writes is
UTC) while PostgreSQL keeps it, so whatever reads a timestamp back passes it
through ``as_utc``.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime | None) -> datetime | None:
    """A naive timestamp read from the database is UTC; an aware one is returned as it is."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment
