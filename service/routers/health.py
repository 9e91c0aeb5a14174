"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from lipspline_platform.db.engine import database_answers
from lipspline_platform.jobs.queue import broker_reachable
from service.http.openapi_docs import problems
from service.http.problems import PROBLEM_JSON, problem_body
from service.security.deps import AppSettings

router = APIRouter(tags=["health"])


class Readiness(BaseModel):
    status: Literal["ready"]
    checks: dict[str, bool] = Field(description="each dependency (database, broker) and whether it answered")


class Liveness(BaseModel):
    status: Literal["ok"]


@router.get("/healthz", operation_id="check_liveness", response_model=Liveness)
def healthz() -> dict[str, str]:
    """The process is up and serving requests."""
    return {"status": "ok"}


@router.get("/readyz", operation_id="check_readiness", response_model=Readiness,
            responses=problems((503, "database or broker unreachable (`checks` says which)")))
def readyz(settings: AppSettings) -> JSONResponse:
    """Ready when the database answers a query and the broker accepts a connection."""
    checks = {"database": database_answers(settings.resolved_database_url), "broker": broker_reachable(settings)}
    if all(checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    detail = "unreachable: " + ", ".join(k for k, ok in checks.items() if not ok)
    body = problem_body(503, "Service Unavailable", detail, "not-ready", "/readyz", checks=checks)
    return JSONResponse(body, status_code=503, media_type=PROBLEM_JSON)
