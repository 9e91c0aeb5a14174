"""How the SDK talks HTTP: the key, the base URL, and retries that are safe.

* Every POST carries an ``Idempotency-Key`` (a new UUID per call, the same on each retry of
  that call), so a retried upload or job submission creates one record, never two: the
  service replays the first answer for a repeated key.
* A call is retried on a connection error or timeout, and on 429 / 503 (the answers that
  say "later"), waiting what ``Retry-After`` asks (capped), else an exponential backoff.
  Other answers are final: a 4xx will not change by asking again.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from lipspline_client.errors import LipSplineError

DEFAULT_URL = "http://127.0.0.1:8000"
RETRY_STATUSES = frozenset({429, 503})
#: network errors after which the same request may be sent again (with its idempotency key)
RETRY_ERRORS = (httpx.TransportError,)


def default_url() -> str:
    return os.environ.get("LIPSPLINE_URL") or DEFAULT_URL


def default_api_key() -> str | None:
    """``LIPSPLINE_API_KEY``, else the key ``lipspline serve`` wrote for its default tenant (when readable)."""
    key = os.environ.get("LIPSPLINE_API_KEY")
    if key:
        return key.strip()
    path = Path(os.environ.get("LIPSPLINE_DATA_DIR") or "./lipspline-data") / "api-key"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; ``Retry-After`` is honoured up to ``max_wait_s``."""

    attempts: int = 5
    backoff_s: float = 0.5
    max_wait_s: float = 30.0

    def wait_s(self, attempt: int, response: httpx.Response | None) -> float:
        header = response.headers.get("Retry-After") if response is not None else None
        if header is not None:
            try:
                return min(max(float(header), 0.0), self.max_wait_s)
            except ValueError:  # an HTTP date: fall back to the backoff
                pass
        return min(self.backoff_s * 2**attempt, self.max_wait_s)


@dataclass
class Request:
    """One call, as data: sent as is by the sync and the async transport."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    files: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def prepared(self) -> Request:
        if self.method == "POST" and "Idempotency-Key" not in self.headers:
            self.headers["Idempotency-Key"] = str(uuid.uuid4())
        return self

    def kwargs(self) -> dict[str, Any]:
        return {"params": self.params, "json": self.json, "content": self.content, "files": self.files,
                "data": self.data, "headers": self.headers}


def _headers(api_key: str | None) -> dict[str, str]:
    from api_schemas.version import __version__

    headers = {"User-Agent": f"lipspline-python/{__version__}"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _checked(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    response.read()
    raise LipSplineError.from_response(response)


class SyncTransport:
    def __init__(self, url: str, api_key: str | None, timeout_s: float, retry: RetryPolicy,
                 http: httpx.Client | None = None) -> None:
        self.url, self.retry = url.rstrip("/"), retry
        self.http = http or httpx.Client(base_url=self.url, headers=_headers(api_key), timeout=timeout_s)

    def send(self, request: Request, *, stream: bool = False) -> httpx.Response:
        request.prepared()
        for attempt in range(self.retry.attempts):
            last = attempt == self.retry.attempts - 1
            try:
                built = self.http.build_request(request.method, request.path, **request.kwargs())
                response = self.http.send(built, stream=stream)
            except RETRY_ERRORS as exc:
                if last:
                    raise LipSplineError(f"{request.method} {request.path}: {type(exc).__name__}: {exc}") from exc
                time.sleep(self.retry.wait_s(attempt, None))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                response.close()
                time.sleep(self.retry.wait_s(attempt, response))
                continue
            return _checked(response)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self.http.close()


class AsyncTransport:
    def __init__(self, url: str, api_key: str | None, timeout_s: float, retry: RetryPolicy,
                 http: httpx.AsyncClient | None = None) -> None:
        self.url, self.retry = url.rstrip("/"), retry
        self.http = http or httpx.AsyncClient(base_url=self.url, headers=_headers(api_key), timeout=timeout_s)

    async def send(self, request: Request, *, stream: bool = False) -> httpx.Response:
        request.prepared()
        for attempt in range(self.retry.attempts):
            last = attempt == self.retry.attempts - 1
            try:
                built = self.http.build_request(request.method, request.path, **request.kwargs())
                response = await self.http.send(built, stream=stream)
            except RETRY_ERRORS as exc:
                if last:
                    raise LipSplineError(f"{request.method} {request.path}: {type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(self.retry.wait_s(attempt, None))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                await response.aclose()
                await asyncio.sleep(self.retry.wait_s(attempt, response))
                continue
            if not response.is_success:
                await response.aread()
            return _checked(response)
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        await self.http.aclose()
