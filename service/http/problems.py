"""RFC 9457 problem details: every error the API returns is ``application/problem+json``.

Clients get a machine-readable ``type``, a human ``detail`` that names the field
or row at fault, and for validation errors an ``errors`` list with each field path
(the first of them also as ``field``, as the other problems that concern one field have it).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from lipspline.data import DatasetError
from service.http.metrics import count_problem

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://lipspline.dev/problems/"
log = logging.getLogger(__name__)
#: what a 503 during a database outage asks clients to wait
DATABASE_RETRY_AFTER_S = 2


class ProblemError(Exception):
    """An error with its HTTP status, raised anywhere in a request and rendered as problem+json."""

    def __init__(self, status: int, title: str, detail: str, *, kind: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.kind = kind or title.lower().replace(" ", "-")
        self.extra = extra
        self.headers: dict[str, str] = {}


def problem_body(status: int, title: str, detail: str, kind: str, instance: str, **extra: Any) -> dict[str, Any]:
    """The one shape of every error body (handlers, the body-size middleware, the readiness probe)."""
    return {"type": PROBLEM_BASE + kind, "title": title, "status": status, "detail": detail, "instance": instance,
            **extra}


def is_oip_path(path: str) -> bool:
    """Whether the path is under ``/v2``, the Open Inference Protocol (service/routers/oip.py)."""
    return path == "/v2" or path.startswith("/v2/")


def problem_response(
    request: Request, status: int, title: str, detail: str, kind: str, headers: dict | None = None, **extra: Any
) -> JSONResponse:
    count_problem(status, kind)
    if is_oip_path(request.url.path):
        # OIP clients (tritonclient, KServe's) parse ``{"error": "..."}``, and expect 400 for any bad request
        return JSONResponse({"error": detail}, status_code=400 if status == 422 else status, headers=headers)
    body = problem_body(status, title, detail, kind, str(request.url.path), **extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def not_found(what: str, ident: str) -> ProblemError:
    return ProblemError(404, "Not Found", f"{what} {ident!r} does not exist", kind="not-found")


def bad_artifact(model_id: str, reason: str) -> ProblemError:
    """409: the stored model cannot be trusted (its weights fail their sha256 check, or cannot be read).

    A conflict with the resource's state, not the client's request: retrying will not help
    until the model is trained again; nothing of the tampered blob is loaded or sent.
    """
    return ProblemError(409, "Conflict", f"model {model_id!r} {reason}", kind="bad-artifact")


def invalid_field(field: str, message: str) -> ProblemError:
    """A 422 naming the field at fault, shaped like the automatic validation errors."""
    return ProblemError(
        422,
        "Validation Error",
        f"{field}: {message}",
        kind="validation-error",
        field=field,
        errors=[{"field": field, "message": message}],
    )


def _field_path(loc: tuple | list) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) if parts else "body"


def _is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(request, exc.status, exc.title, exc.detail, exc.kind, exc.headers or None, **exc.extra)

    @app.exception_handler(DatasetError)
    async def _dataset(request: Request, exc: DatasetError) -> JSONResponse:
        status = 413 if exc.problem == "too_large" else 422
        return problem_response(
            request,
            status,
            "Invalid Dataset",
            str(exc),
            "invalid-dataset",
            problem=exc.problem,
            row=exc.row,
            column=exc.column,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for error in exc.errors():
            message = str(error.get("msg", "invalid value"))
            errors.append({"field": _field_path(error.get("loc", ())), "message": message, "type": error.get("type")})
        first = errors[0] if errors else {"field": "body", "message": "invalid request"}
        if first.get("type") == "json_invalid":
            # Unparseable JSON is malformed syntax (400), as on /v1/datasets, whose body is
            # parsed by the route itself; 422 stays for well-formed bodies with bad values.
            detail = f"body: not valid JSON ({first['message']})"
            return problem_response(request, 400, "Bad Request", detail, "bad-json")
        content_type = request.headers.get("content-type")
        if first["field"] == "body" and not _is_json(content_type):
            # FastAPI reads a body not sent as JSON as a string, and says only that it is "not a dictionary"
            got = f"got Content-Type {content_type!r}" if content_type else "no Content-Type was sent"
            first["message"] = f"expected a JSON object: send it with Content-Type: application/json ({got})"
            errors[0] = first
        detail = f"{first['field']}: {first['message']}"
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more)"
        return problem_response(request, 422, "Validation Error", detail, "validation-error", field=first["field"],
                                errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not Found", 405: "Method Not Allowed", 413: "Content Too Large"}.get(exc.status_code, "Error")
        return problem_response(
            request,
            exc.status_code,
            title,
            str(exc.detail),
            title.lower().replace(" ", "-"),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # The database is down or restarting: nothing the client did; the pool reconnects by itself
        # (pre-ping) once it is back, so the same request will succeed after a short wait.
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return problem_response(
            request,
            503,
            "Service Unavailable",
            "the database is unavailable; retry shortly",
            "database-unavailable",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, exc: DataError) -> JSONResponse:
        # A value the database cannot store (a NUL byte in a form field on PostgreSQL, a number out of a
        # column's range) that no earlier check caught: the client's input, not a server fault, and the
        # transaction was rolled back, so nothing is half-written. Request bodies and parameters are
        # checked before this (RequestBody, query_parameters.py); this is the net under them.
        log.warning("value refused by the database on %s %s: %s", request.method, request.url.path, exc.orig)
        return problem_response(request, 422, "Unprocessable Content",
                                "a value of the request cannot be stored (a NUL byte, or a number out of range)",
                                "validation-error")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug, not the client's fault: log it fully, tell the client nothing internal.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(request, 500, "Internal Server Error", "an unexpected error occurred", "internal")
