"""A job's event stream, kept in the database: what ``GET /v1/jobs/{id}/events`` sends.

Every change the lifecycle makes to a job appends an event in the *same transaction*:
a ``status`` event per status change, an ``epoch`` event per finished epoch, and a
``final`` event (with the model id or the error) after the status that ends the job.
Because the stream lives in the database, any API replica can serve it, and because each
event's ``seq`` is 1, 2, 3 … per job and written atomically with the change, a client that
reconnects with ``Last-Event-ID: n`` gets exactly the events after ``n``: none lost, none twice.

``seq`` is the row's primary key with the job id, and the next number is read while the
lifecycle holds the job row (``FOR UPDATE`` or a conditional UPDATE that matched it), so two
writers can never take the same number; if one ever did, the primary key would refuse it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api_schemas.timestamps import utcnow
from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.tables import JobEventRow, JobRow

STATUS, EPOCH, FINAL = "status", "epoch", "final"


def append(session: Session, job_id: str, type_: str, data: dict[str, Any]) -> int:
    """Append one event to the job's stream, in the caller's transaction; returns its ``seq``."""
    session.flush()  # the job row (when new) must exist before its first event
    last = session.scalar(select(func.max(JobEventRow.seq)).where(JobEventRow.job_id == job_id)) or 0
    session.add(JobEventRow(job_id=job_id, seq=last + 1, type=type_, data=data, created_at=utcnow()))
    return last + 1


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Batch:
    """What one poll of the stream read: the job's status (read first) and the events after a seq."""

    status: str | None
    events: list[StoredEvent]


def read_after(database_url: str, job_id: str, after: int, limit: int = 500) -> Batch:
    """The events after ``after`` (at most ``limit``), and the job's status read *before* them.

    Read in that order, a terminal status guarantees the events include its ``final`` one
    (written in the same transaction), so a stream that has sent everything up to a terminal
    status may end. The session is closed on return: no connection is held between polls.
    """
    with session_scope(database_url) as session:
        status = session.scalar(select(JobRow.status).where(JobRow.id == job_id))
        rows = session.execute(
            select(JobEventRow.seq, JobEventRow.type, JobEventRow.data)
            .where(JobEventRow.job_id == job_id, JobEventRow.seq > after)
            .order_by(JobEventRow.seq)
            .limit(limit)
        ).all()
    return Batch(status, [StoredEvent(seq, type_, data) for seq, type_, data in rows])
