"""The FastAPI application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI

from api_schemas.version import __version__
from lipspline_platform.jobs.reconciler import Reconciler
from lipspline_platform.observability.structured_logging import configure_logging
from lipspline_platform.observability.tracing import configure_tracing
from lipspline_platform.settings import Settings, get_settings
from lipspline_platform.webhooks.dispatcher import WebhookDispatcher
from service.http.docs_pages import install_docs
from service.http.limits import BodySizeLimit
from service.http.metrics import scrape_registries
from service.http.openapi_docs import install_openapi, operation_id_of
from service.http.problems import install_problem_handlers
from service.http.query_parameters import reject_unknown_query_parameters
from service.http.rate_limit import rate_limiter_for
from service.http.request_telemetry import RequestTelemetry
from service.http.trailing_slash import TrailingSlash
from service.inference.compute_placement import ComputePlacement
from service.inference.model_cache import ModelCache
from service.routers import (
    admin,
    datasets,
    docs_site,
    health,
    job_events,
    jobs,
    models,
    oip,
    prometheus,
    registry,
    storage,
    sweeps,
    ui,
    webhooks,
)
from service.security.auth import VerifiedKeys

DESCRIPTION = """
Train deep-spline networks (learnable linear-spline activations, BV² objective)
and serve them with a **certified Lipschitz bound**: a proven upper bound on how
far the output can move per unit of input change (l2), plus the certified
robustness radius that follows from it. Errors are `application/problem+json`
(RFC 9457) and name the field or row at fault. Every `/v1` route needs
`Authorization: Bearer <API key>` (`lipspline keys create --tenant NAME`, or `POST /v1/admin/keys`)
with the scope the route names: `read`, `predict`, `train` or `admin`.
The Open Inference Protocol (KServe v2) is served under `/v2` with the same keys; it is
specified by KServe and not listed here (see the user guide's *Open Inference Protocol* page).
The user guide (quick start, concepts, how-tos, generated reference) is served at
[`/docs/site/`](/docs/site/) once built with `make docs` in the clone.
"""


@asynccontextmanager
async def _reconciler_lifespan(app: FastAPI) -> AsyncIterator[None]:
    # every API process also re-queues jobs of dead workers and re-sends what the broker lost
    # … and sends due webhook deliveries (lipspline_platform/webhooks/dispatcher.py)
    reconciler = Reconciler(app.state.settings).start()
    # What is alive once the app has started (modules, torch, numpy, pydantic schemas: hundreds of
    # thousands of objects that live as long as the process) leaves the garbage collector's view:
    # otherwise every full collection walks them all and stalls the event loop for tens of
    # milliseconds, the tail of every request's latency (the p99 of bench_service's mixed load halves).
    gc.freeze()
    dispatcher = WebhookDispatcher(app.state.settings).start()
    try:
        yield
    finally:
        reconciler.stop()
        dispatcher.stop()
        close = getattr(app.state.rate_limiter, "close", None)
        if close is not None:  # the shared limiter's Redis connections
            await close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.ensure_dirs()
    app = FastAPI(title="LipSpline", version=__version__, description=DESCRIPTION, lifespan=_reconciler_lifespan,
                  docs_url=None, redoc_url=None,
                  # a misspelt query parameter is a 400 naming it, never silently ignored (all /v1 routes)
                  dependencies=[Depends(reject_unknown_query_parameters)],
                  # operationIds are the handlers' names (or their explicit operation_id): `submit_job`, not
                  # `submit_job_v1_jobs_post`, so generated clients get short, readable function names
                  generate_unique_id_function=operation_id_of)
    install_docs(app)  # /docs and /redoc with assets from the installed package, not a CDN
    app.state.settings = settings
    app.state.model_cache = ModelCache(settings, settings.model_cache_size)
    app.state.rate_limiter = rate_limiter_for(
        settings.rate_limit_per_s, settings.rate_limit_burst, settings.redis_rate_limit_url
    )
    app.state.compute_placement = ComputePlacement()
    app.state.verified_keys = VerifiedKeys(settings.resolved_database_url, settings.auth_cache_ttl_s)
    app.state.metrics_registries = scrape_registries(settings.resolved_database_url)
    install_problem_handlers(app)
    # counts the bytes of every request body as they stream in (413 past the limit)
    app.add_middleware(BodySizeLimit, limit=settings.max_upload_bytes)
    if settings.request_telemetry:
        # outermost: the request id is bound before anything logs and returned on every response;
        # every request, the 413s above included, is counted and timed (by route template)
        app.add_middleware(RequestTelemetry)
    # before routing and everything else: /v1/jobs/ is served as /v1/jobs, never a bare 307
    app.add_middleware(TrailingSlash)
    for router in (health.router, prometheus.router, datasets.router, storage.router, jobs.router,
                   job_events.router, webhooks.router, models.router, registry.router, sweeps.router, oip.router,
                   admin.router, ui.router, docs_site.router):
        app.include_router(router)
    _hot_routes_first(app, models.router, oip.router)
    install_openapi(app)  # errors as problem+json, the Bearer scheme, on every route
    configure_tracing(settings, "lipspline-api", app=app)  # nothing at all unless an OTLP endpoint is set
    return app


def _hot_routes_first(app: FastAPI, *hot: APIRouter) -> None:
    """Match the inference routers' paths first; document every route in the order it was included.

    A request is matched against the app's routes in order, each included router's routes in
    turn, so a predict (the models router, 7th) was compared with every health, metrics,
    dataset, job and webhook path first: a tenth of a 1-row predict's time. No path of another
    router lies under ``/v1/models/`` or ``/v2/``, so matching them first answers every request
    as before; the OpenAPI document is generated from the order of inclusion, so it is unchanged.
    """
    documented = list(app.router.routes)

    def is_hot(route: object) -> bool:
        # FastAPI >= 0.16x keeps an included router as one entry; older versions copy its routes
        original = getattr(route, "original_router", None)
        return original in hot if original is not None else str(getattr(route, "path", "")).startswith(
            tuple(router.prefix + "/" for router in hot))

    matching = [route for route in documented if is_hot(route)] + [r for r in documented if not is_hot(r)]
    generate = app.openapi

    def openapi_in_documented_order() -> dict[str, Any]:
        # generated once, on the event loop (or before serving): no request is matched meanwhile
        app.router.routes[:] = documented
        try:
            return generate()
        finally:
            app.router.routes[:] = matching

    app.openapi = openapi_in_documented_order  # type: ignore[method-assign]
    app.router.routes[:] = matching


def app_from_env() -> FastAPI:
    """Entry point for `uvicorn --factory service.app:app_from_env` (`lipspline api`): logs as configured."""
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings)
