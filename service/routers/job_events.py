"""``GET /v1/jobs/{id}/events``: a job's progress as Server-Sent Events, read from the database.

The stream sends the job's stored events (``lipspline_platform/jobs/job_events.py``) in order,
each with ``id: <seq>``, and ends after the ``final`` event. Any API replica can serve it,
since the events are rows, and a client that reconnects with ``Last-Event-ID`` (browsers'
``EventSource`` does so by itself) resumes right after the last event it received.

The database is polled every ``sse_poll_s`` (0.3 s) with one short query in a thread; no
connection is held between polls, so a thousand open streams cost a thousand small queries
every poll period, not a thousand pooled connections. A comment line goes out after
``sse_heartbeat_s`` without an event, so proxies and load balancers keep the connection open.

A stream is a long request, so what requests get checked once is checked while it runs:
its key every ``sse_key_check_s`` (a revoked or expired key ends the stream, as its next
request would get a 401), a stream idle for ``sse_idle_timeout_s`` ends (the client resumes
by seq), and each API process holds at most ``sse_max_streams_per_key`` open streams per key
and ``sse_max_streams_per_tenant`` per tenant (429 beyond), so a tenant cannot starve the
others' requests with thousands of streams.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials

from api_schemas import TERMINAL_STATES
from api_schemas.http import JobEvent
from lipspline_platform.jobs import job_events
from lipspline_platform.jobs import queries as jobs
from lipspline_platform.settings import Settings
from service.http.openapi_docs import component, problems
from service.http.problems import ProblemError, not_found
from service.security.deps import AppSettings, ReadPrincipal, bearer, principal_of_key
from service.security.scopes import Principal

#: event sequence numbers are 32-bit integers in the database: a larger one names no event (and
#: would overflow the query), so it is refused as a bad parameter
MAX_SEQ = 2**31 - 1

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
EVENT_STREAM = "text/event-stream"
#: events read per poll; a stream that is far behind catches up in batches this size
BATCH = 500
#: how long a disconnected client's browser waits before reconnecting (the SSE ``retry:`` field)
RECONNECT_MS = 1000


#: one message of the stream, as the SSE format has it (what OpenAPI 3.2 calls an event's item schema):
#: ``data`` holds a JobEvent as JSON, ``id`` its seq, ``event`` its type; the first also sets ``retry``
SSE_MESSAGE_SCHEMA = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "id": {"type": "string", "description": "the event's `seq` (send the last one seen as Last-Event-ID)"},
        "event": {"type": "string", "enum": ["status", "epoch", "final"]},
        "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": component(JobEvent)},
        "retry": {"type": "integer", "description": "reconnection delay in ms (first message only)"},
    },
}


def sse_message(event: JobEvent) -> str:
    """One SSE message: ``id``, ``event`` (the type) and the JSON event on one ``data`` line."""
    return f"id: {event.seq}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n"


@dataclass
class OpenStreams:
    """The event streams this API process has open, counted per key and per tenant."""

    by_key: Counter = field(default_factory=Counter)
    by_tenant: Counter = field(default_factory=Counter)

    def open(self, principal: Principal, settings: Settings) -> None:
        """Count one more stream, or 429 when the key or the tenant holds its most already."""
        if self.by_key[principal.key_id] >= settings.sse_max_streams_per_key:
            raise _too_many(f"this API key holds {settings.sse_max_streams_per_key} open event streams already")
        if self.by_tenant[principal.tenant_id] >= settings.sse_max_streams_per_tenant:
            raise _too_many(f"the tenant holds {settings.sse_max_streams_per_tenant} open event streams already")
        self.by_key[principal.key_id] += 1
        self.by_tenant[principal.tenant_id] += 1

    def close(self, principal: Principal) -> None:
        self.by_key[principal.key_id] -= 1
        self.by_tenant[principal.tenant_id] -= 1


def _too_many(detail: str) -> ProblemError:
    error = ProblemError(429, "Too Many Requests", f"{detail}; close one first", kind="too-many-streams")
    error.headers = {"Retry-After": "5"}
    return error


def open_streams(request: Request) -> OpenStreams:
    state = request.app.state
    if not hasattr(state, "open_streams"):
        state.open_streams = OpenStreams()
    return state.open_streams


async def _stream(
    request: Request, settings: Settings, job_id: str, after: int, until_now: bool = False, key: str | None = None
) -> AsyncIterator[str]:
    # the reconnection delay rides with the first event: a block of its own would be an event with
    # no data, which some clients dispatch (and validate) as one
    retry = f"retry: {RECONNECT_MS}\n"
    quiet_since = last_event = key_checked = time.monotonic()
    while True:
        now = time.monotonic()
        if key is not None and now - key_checked >= settings.sse_key_check_s:
            if await principal_of_key(request, key) is None:
                yield ": the API key is no longer valid (revoked or expired); the stream ends\n\n"
                return
            key_checked = now
        if now - last_event >= settings.sse_idle_timeout_s:
            yield f": no event for {settings.sse_idle_timeout_s:g} s; the stream ends (resume with Last-Event-ID)\n\n"
            return
        batch = await run_in_threadpool(job_events.read_after, settings.resolved_database_url, job_id, after, BATCH)
        for stored in batch.events:
            yield retry + sse_message(JobEvent(seq=stored.seq, type=stored.type, job_id=job_id, data=stored.data))
            retry = ""
            after = stored.seq
        if batch.events:
            quiet_since = last_event = time.monotonic()
        # the status was read before the events: terminal means the final event was among them
        caught_up = len(batch.events) < BATCH
        if batch.status is None or (caught_up and (until_now or batch.status in TERMINAL_STATES)):
            return
        if time.monotonic() - quiet_since >= settings.sse_heartbeat_s:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        if await request.is_disconnected():
            return
        if len(batch.events) < BATCH:
            await asyncio.sleep(settings.sse_poll_s)


@router.get(
    "/{job_id}/events",
    operation_id="stream_job_events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-Sent Events, one per status change and per epoch, then a `final` event; "
            "each `data:` line is a JobEvent, each `id:` its `seq`",
            "content": {EVENT_STREAM: {"schema": SSE_MESSAGE_SCHEMA}},
        },
        **problems(404, (429, "the key or the tenant holds its most open event streams (`too-many-streams`)")),
    },
)
async def job_event_stream(
    job_id: str,
    request: Request,
    settings: AppSettings,
    principal: ReadPrincipal,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    last_event_id: Annotated[
        int | None,
        Header(alias="Last-Event-ID", ge=0, le=MAX_SEQ, description="resume after this event (its seq)"),
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_SEQ, description="like Last-Event-ID, for clients that cannot set it")
    ] = None,
    until_now: Annotated[
        bool, Query(description="end after the events stored so far (a log, not a live stream)")
    ] = False,
) -> StreamingResponse:
    """Follow a job live: epochs, status changes and the final event; ends when the job does."""
    if not await run_in_threadpool(jobs.is_tenants, settings.resolved_database_url, principal.tenant_id, job_id):
        raise not_found("job", job_id)
    start = last_event_id if last_event_id is not None else (after or 0)
    streams = open_streams(request)
    streams.open(principal, settings)
    key = credentials.credentials if credentials is not None else None

    async def counted() -> AsyncIterator[str]:
        try:
            async for message in _stream(request, settings, job_id, start, until_now, key):
                yield message
        finally:
            streams.close(principal)

    # no-cache and X-Accel-Buffering: proxies must pass each event on at once, not buffer the stream
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(counted(), media_type=EVENT_STREAM, headers=headers)
