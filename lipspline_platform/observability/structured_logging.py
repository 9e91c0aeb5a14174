"""Structured logs: one JSON object per line, carrying who and what a line is about.

Every line has ``ts`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, plus the
context bound where it was written: ``request_id`` (the API request, and the job that
request submitted), ``tenant``, ``job_id`` (which is also the Celery task id),
``model_id``, ``attempt`` and ``worker``. The context lives in one ``ContextVar``, so it
follows a request across ``await`` and into the threads FastAPI runs handlers in, and
never leaks between requests or tasks.

``LIPSPLINE_LOG_FORMAT``: ``json`` (what a log pipeline parses), ``text`` (for a person),
or ``auto``: text for ``lipspline serve`` on a terminal, JSON everywhere else.

No secret is ever written: nothing logs headers or request bodies, and as a last line of
defence anything shaped like an API key (``lsk_`` + 20 or more key characters) is masked
in every message before it is written.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import orjson

#: the context fields, in the order the text format prints them
CONTEXT_FIELDS = ("request_id", "tenant", "job_id", "model_id", "attempt", "worker")
#: extra attributes a log call may pass (``extra={...}``) that are written too (the access log's)
EXTRA_FIELDS = ("method", "path", "status", "duration_ms")

_context: ContextVar[Mapping[str, Any]] = ContextVar("lipspline_log_context", default=MappingProxyType({}))

#: an incoming X-Request-ID is used only if it is this safe: bounded, no spaces, quotes or control characters
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
_KEY_SHAPED = re.compile(r"lsk_[A-Za-z0-9_-]{20,}")


def bind(**fields: Any) -> Token:
    """Add fields to the current context (until :func:`reset` with the returned token)."""
    return _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def reset(token: Token) -> None:
    _context.reset(token)


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    token = bind(**fields)
    try:
        yield
    finally:
        _context.reset(token)


def context() -> Mapping[str, Any]:
    return _context.get()


def current_request_id() -> str | None:
    return _context.get().get("request_id")


def valid_request_id(value: str | None) -> str | None:
    """The client's X-Request-ID if it is safe to log and to echo, else None (a new one is made)."""
    if value and REQUEST_ID_PATTERN.fullmatch(value):
        return value
    return None


def mask_secrets(text: str) -> str:
    return _KEY_SHAPED.sub("lsk_***", text) if "lsk_" in text else text


_second_text: tuple[int, str] = (-1, "")


def _timestamp(record: logging.LogRecord) -> str:
    """``2026-11-30T12:34:56.789Z``; the part up to the second is formatted once per second (hot path)."""
    global _second_text
    second = int(record.created)
    cached = _second_text
    if cached[0] != second:
        cached = _second_text = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{int((record.created - second) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line (orjson: a few microseconds per line)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_secrets(record.getMessage()),
        }
        line.update(_context.get())
        attributes = record.__dict__
        for name in (*CONTEXT_FIELDS, *EXTRA_FIELDS):
            if name in attributes:
                line[name] = attributes[name]
        if record.exc_info:
            line["exception"] = mask_secrets(self.formatException(record.exc_info))
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time level logger [field=value ...] message``: for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {**_context.get()}
        for name in (*CONTEXT_FIELDS, *EXTRA_FIELDS):
            if name in record.__dict__:
                fields[name] = record.__dict__[name]
        context_text = " ".join(f"{k}={v}" for k, v in fields.items())
        text = f"{_timestamp(record)} {record.levelname:<7} {record.name}"
        text += f" [{context_text}] " if context_text else " "
        text += mask_secrets(record.getMessage())
        if record.exc_info:
            text += "\n" + mask_secrets(self.formatException(record.exc_info))
        return text


class _OurHandler(logging.StreamHandler):
    """Marks the handler this module installed, so configuring twice replaces it instead of doubling lines."""


def resolve_format(setting: str, *, terminal_text: bool) -> str:
    """``auto`` is text only where a person reads it: ``lipspline serve`` attached to a terminal."""
    if setting != "auto":
        return setting
    return "text" if terminal_text and sys.stderr.isatty() else "json"


def configure_logging(log_format: str, level: str = "INFO", *, terminal_text: bool = False) -> str:
    """Send every logger's lines to stderr in the chosen format; returns the format used."""
    chosen = resolve_format(log_format, terminal_text=terminal_text)
    # No line written carries the caller's file and line, thread or process names, so the
    # logging module need not look them up for every record (its documented optimisation):
    # the caller lookup alone was most of the cost of an access line.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _OurHandler)]:
        root.removeHandler(handler)
    handler = _OurHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    # the service writes its own access line (with the request id); uvicorn's would be a second, plain one
    logging.getLogger("uvicorn.access").disabled = True
    return chosen
