"""Request-scoped dependencies: settings and a database session per request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from service.db.engine import session_scope
from service.settings import Settings


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def db_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the handler returns, rolled back on error."""
    with session_scope(request.app.state.settings.resolved_database_url) as session:
        yield session


# scope="function": the transaction commits when the handler returns, *before* the
# response is sent, so a client never sees 201/204 for a write that is not yet durable
# (the default "request" scope would commit after the response).
DbSession = Annotated[Session, Depends(db_session, scope="function")]
AppSettings = Annotated[Settings, Depends(settings_of)]
