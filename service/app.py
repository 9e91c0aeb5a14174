"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from lipspline_platform.reconciler import Reconciler
from lipspline_platform.settings import Settings, get_settings
from service.auth import VerifiedKeys
from service.compute_placement import ComputePlacement
from service.limits import BodySizeLimit
from service.model_cache import ModelCache
from service.openapi_docs import install_openapi
from service.problems import install_problem_handlers
from service.rate_limit import RateLimiter
from service.routers import datasets, health, jobs, models, oip, registry, sweeps

DESCRIPTION = """
Train deep-spline networks (learnable linear-spline activations, BV² objective)
and serve them with a **certified Lipschitz bound**: a proven upper bound on how
far the output can move per unit of input change (l2), plus the certified
robustness radius that follows from it. Errors are `application/problem+json`
(RFC 9457) and name the field or row at fault. Every `/v1` route needs
`Authorization: Bearer <API key>` (`lipspline keys create --tenant NAME`).
The Open Inference Protocol (KServe v2) is served under `/v2` with the same keys; it is
specified by KServe and not listed here (see the README).
"""


@asynccontextmanager
async def _reconciler_lifespan(app: FastAPI) -> AsyncIterator[None]:
    # every API process also re-queues jobs of dead workers and re-sends what the broker lost
    reconciler = Reconciler(app.state.settings).start()
    try:
        yield
    finally:
        reconciler.stop()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.ensure_dirs()
    app = FastAPI(title="LipSpline", version="1.0.0", description=DESCRIPTION, lifespan=_reconciler_lifespan)
    app.state.settings = settings
    app.state.model_cache = ModelCache(settings.resolved_database_url, settings.model_cache_size)
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
    app.state.compute_placement = ComputePlacement()
    app.state.verified_keys = VerifiedKeys(settings.resolved_database_url, settings.auth_cache_ttl_s)
    install_problem_handlers(app)
    # outermost: counts the bytes of every request body as they stream in (413 past the limit)
    app.add_middleware(BodySizeLimit, limit=settings.max_upload_bytes)
    for router in (health.router, datasets.router, jobs.router, models.router, registry.router, sweeps.router,
                   oip.router):
        app.include_router(router)
    install_openapi(app)  # errors as problem+json, the Bearer scheme, on every route
    return app


def app_from_env() -> FastAPI:
    """Entry point for `uvicorn --factory service.app:app_from_env`."""
    return create_app()
