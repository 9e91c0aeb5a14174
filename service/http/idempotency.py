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
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Header, Response
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api_schemas.timestamps import as_utc, utcnow
from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.tables import IdempotencyRow
from service.http.metrics import IDEMPOTENT_REPLAYS
from service.http.problems import ProblemError

MAX_KEY_LENGTH = 255
#: the header as a route parameter: FastAPI checks its length and documents it in OpenAPI
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=MAX_KEY_LENGTH,
           description="retry-safe POST: same key + same body replays the first response"),
]
STALE_AFTER = timedelta(minutes=5)


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


class IdempotentRequest:
    """The idempotency state of one request; ``key`` is None when the client sent no header."""

    def __init__(self, database_url: str, tenant_id: str, route: str, key: str | None) -> None:
        self.database_url, self.tenant_id, self.route, self.key = database_url, tenant_id, route, key
        self.claimed = False

    def respond(self, request_fingerprint: str, produce: Callable[[], Response]) -> Response:
        """Replay, refuse, or run ``produce`` (which may call :meth:`finish`); a failure releases the key."""
        replay = self.begin(request_fingerprint)
        if replay is not None:
            return replay
        try:
            return produce()
        except BaseException:
            self.release()
            raise

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
                        ))
                        session.flush()
                    except IntegrityError:  # a concurrent request claimed it first: look again
                        session.rollback()
                        continue
                    self.claimed = True
                    return None
                if row.request_sha256 != request_fingerprint:
                    raise ProblemError(422, "Idempotency Key Reused",
                                       "Idempotency-Key: this key was used with a different request body",
                                       kind="idempotency-key-reused")
                if row.state == "in_flight":
                    if utcnow() - as_utc(row.created_at) > STALE_AFTER:
                        row.created_at = utcnow()
                        self.claimed = True
                        return None
                    raise ProblemError(409, "Conflict", "Idempotency-Key: the first request with this key is still "
                                       "being processed; retry later", kind="idempotency-in-flight")
                IDEMPOTENT_REPLAYS.labels(self.route).inc()
                headers = dict(row.response_headers or {}, **{"Idempotent-Replayed": "true"})
                return JSONResponse(json.loads(row.response_body or "null"), status_code=row.response_status or 200,
                                    headers=headers)
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

    def release(self, *, finished: bool = False) -> None:
        """The request failed: forget the key so the client may retry with it.

        ``finished``: the response was already stored with the resource, and the resource was
        then withdrawn (a job whose message the broker refused): forget the stored response too,
        or a retry would replay a 202 for a job that no longer exists.
        """
        if not self.claimed:
            return
        with session_scope(self.database_url) as session:
            row = session.get(IdempotencyRow, (self.tenant_id, self.route, self.key))
            if row is not None and (row.state == "in_flight" or finished):
                session.delete(row)
        self.claimed = False
