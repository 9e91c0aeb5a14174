"""The request id: taken from ``X-Request-ID`` (when safe) or made, bound for the request's logs, sent back.

Pure ASGI middleware, outermost, so every log line of the request (handlers, threads
FastAPI runs them in, the error handlers) and its one access line carry the id, and the
response, error or not, returns it in ``X-Request-ID``. A job submitted by the request
stores it (``jobs.request_id``), so the worker's lines about that job carry it too.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from lipspline_platform.observability import structured_logging

REQUEST_ID_HEADER = b"x-request-id"
access_log = logging.getLogger("lipspline.access")


def new_request_id() -> str:
    return secrets.token_hex(8)


class RequestContext:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers") or ():
            if name == REQUEST_ID_HEADER:
                incoming = value.decode("latin-1")
                break
        request_id = structured_logging.valid_request_id(incoming) or new_request_id()
        encoded = request_id.encode("latin-1")
        began = time.perf_counter()
        status = 500

        async def send_with_id(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, encoded)]
            await send(message)

        token = structured_logging.bind(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                route = scope.get("route")
                access_log.info(
                    "%s %s %d",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "method": scope["method"],
                        "path": getattr(route, "path_format", scope["path"]),
                        "status": status,
                        "duration_ms": round((time.perf_counter() - began) * 1000, 3),
                    },
                )
            structured_logging.reset(token)
