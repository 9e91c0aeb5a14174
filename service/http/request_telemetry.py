"""What the API records about every request: its id, its access line and its metrics.

One pure ASGI middleware, outermost (no ``BaseHTTPMiddleware``: no extra task or body copy),
that wraps ``send`` once and reads the clock twice per request for all three:

- the request id, taken from ``X-Request-ID`` (when safe) or made, is bound for the request's
  logs, so every log line of the request (handlers, threads FastAPI runs them in, the error
  handlers) and its one access line carry it, and the response, error or not, returns it in
  ``X-Request-ID``. A job submitted by the request stores it (``jobs.request_id``), so the
  worker's lines about that job carry it too;
- the Prometheus request counter and latency histogram, labelled by method, route template and
  status (``service.http.metrics``); the label children are cached per label triple, so a
  request costs a dict lookup, an increment and an observation.

These were two middlewares, each wrapping ``send`` and timing the request; on the hot predict
path one layer is one closure and one await less per request.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from lipspline_platform.observability import structured_logging
from service.http.metrics import HTTP_DURATION, HTTP_REQUESTS, UNMATCHED

REQUEST_ID_HEADER = b"x-request-id"
access_log = logging.getLogger("lipspline.access")


def new_request_id() -> str:
    return secrets.token_hex(8)


class RequestTelemetry:
    def __init__(self, app: Any) -> None:
        self.app = app
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

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
            seconds = time.perf_counter() - began
            # path_format: the template without converters ({model_id}, not {model_id:path})
            route = getattr(scope.get("route"), "path_format", None)
            self._count(scope["method"], route or UNMATCHED, status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %d",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "method": scope["method"],
                        "path": route or scope["path"],
                        "status": status,
                        "duration_ms": round(seconds * 1000, 3),
                    },
                )
            structured_logging.reset(token)

    def _count(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, status)
        children = self._children.get(labels)
        if children is None:
            children = self._children[labels] = (
                HTTP_REQUESTS.labels(method, route, str(status)),
                HTTP_DURATION.labels(method, route, str(status)),
            )
        children[0].inc()
        children[1].observe(seconds)
