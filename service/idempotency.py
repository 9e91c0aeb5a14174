"""``Idempotency-Key`` on POST /v1/jobs and POST /v1/datasets (IETF httpapi idempotency draft).

* same key, same request → the original response, replayed (``Idempotent-Replayed: true``);
* same key, different request → 422;
* same key while the first request is still in flight → 409.

Keys are scoped per tenant and route. The fingerprint is taken over the
*parsed* request (canonical JSON; for multipart, the file's sha256 and the form
fields), because a client retrying a multipart upload sends a new random
boundary each time. A request that fails (4xx/5xx) releases its key, so it can
be retried with the same key. An in-flight marker older than ``STALE_AFTER``
(its API process died) is taken over.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db.engine import session_scope
from service.db.tables import IdempotencyRow
from service.problems import ProblemError, invalid_field

HEADER = "idempotency-key"
MAX_KEY_LENGTH = 255
STALE_AFTER = timedelta(minutes=5)


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class IdempotentRequest:
    """The idempotency state of one request; ``key`` is None when the client sent no header."""

    def __init__(self, request: Request, tenant_id: str, route: str) -> None:
        self.database_url = request.app.state.settings.resolved_database_url
        self.tenant_id, self.route = tenant_id, route
        key = request.headers.get(HEADER)
        if key is not None and not (0 < len(key) <= MAX_KEY_LENGTH):
            raise invalid_field("Idempotency-Key", f"must be 1 to {MAX_KEY_LENGTH} characters")
        self.key = key
        self.claimed = False

    def begin(self, request_fingerprint: str) -> JSONResponse | None:
        """Claim the key, or answer from it: a replayed response, 409 or 422."""
        if self.key is None:
            return None
        for _ in range(3):
            with session_scope(self.database_url) as session:
                row = session.get(IdempotencyRow, (self.tenant_id, self.route, self.key), with_for_update=True)
                if row is None:
                    try:
                        session.add(IdempotencyRow(
                            tenant_id=self.tenant_id, route=self.route, key=self.key,
                            request_sha256=request_fingerprint, state="in_flight",
                        ))  # fmt: skip
                        session.flush()
                    except IntegrityError:  # a concurrent request claimed it first: look again
                        session.rollback()
                        continue
                    self.claimed = True
                    return None
                if row.request_sha256 != request_fingerprint:
                    raise ProblemError(422, "Idempotency Key Reused",
                                       "Idempotency-Key: this key was used with a different request body",
                                       kind="idempotency-key-reused")  # fmt: skip
                if row.state == "in_flight":
                    if datetime.now(UTC) - _aware(row.created_at) > STALE_AFTER:
                        row.created_at = datetime.now(UTC)
                        self.claimed = True
                        return None
                    raise ProblemError(409, "Conflict", "Idempotency-Key: the first request with this key is still "
                                       "being processed; retry later", kind="idempotency-in-flight")  # fmt: skip
                headers = dict(row.response_headers or {}, **{"Idempotent-Replayed": "true"})
                return JSONResponse(json.loads(row.response_body or "null"), status_code=row.response_status or 200,
                                    headers=headers)  # fmt: skip
        raise ProblemError(
            409, "Conflict", "Idempotency-Key: concurrent requests with this key", kind="idempotency-in-flight"
        )

    def finish(
        self, status: int, body: Any, headers: dict[str, str] | None = None, session: Session | None = None
    ) -> None:
        """Store the response; pass the handler's session to commit it with the resource itself."""
        if not self.claimed:
            return
        text = json.dumps(body, default=str)

        def store(s: Session) -> None:
            row = s.get(IdempotencyRow, (self.tenant_id, self.route, self.key))
            if row is not None:
                row.state, row.response_status, row.response_body = "done", status, text
                row.response_headers = headers or {}

        if session is not None:
            store(session)
        else:
            with session_scope(self.database_url) as own:
                store(own)

    def release(self) -> None:
        """The request failed: forget the key so the client may retry with it."""
        if not self.claimed:
            return
        with session_scope(self.database_url) as session:
            row = session.get(IdempotencyRow, (self.tenant_id, self.route, self.key))
            if row is not None and row.state == "in_flight":
                session.delete(row)
        self.claimed = False
