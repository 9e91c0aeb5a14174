"""OpenTelemetry tracing, opt-in: FastAPI, Celery and SQLAlchemy spans exported over OTLP/HTTP.

Off unless ``LIPSPLINE_OTEL_EXPORTER_OTLP_ENDPOINT`` (or the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set. Off costs
nothing: neither the SDK nor any instrumentation is even imported (they are the optional
extra ``lipspline[otel]``), and no library is patched. On, a job's trace runs from
``POST /v1/jobs`` (the server span, its SQL) through the broker (Celery's publish span
injects the W3C ``traceparent`` into the message headers) into the worker (the task's
span continues that trace, with the training's SQL beneath it). ``OTEL_SERVICE_NAME`` and
the other ``OTEL_*`` variables of the SDK apply as usual; the service names default to
``lipspline-api`` and ``lipspline-worker``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from lipspline_platform.db.engine import add_engine_hook, remove_engine_hook
from lipspline_platform.settings import Settings

log = logging.getLogger(__name__)
#: requests whose spans would be noise: probes and scrapes
EXCLUDED_URLS = "healthz,readyz,metrics"


def otlp_endpoint(settings: Settings) -> str | None:
    """Where traces go, or None: tracing off."""
    return (
        settings.otel_exporter_otlp_endpoint
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def configure_tracing(settings: Settings, service_name: str, *, app: Any = None, exporter: Any = None) -> Any:
    """Instrument this process (and ``app``, a FastAPI app) when tracing is on; returns the provider or None.

    ``exporter``: a span exporter to use instead of OTLP (the tests' in-memory one); passing
    it turns tracing on regardless of the settings.
    """
    endpoint = otlp_endpoint(settings)
    if exporter is None and endpoint is None:
        return None
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME",
                                                                                        service_name)}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # our own setting names the collector; the OTEL_* variables are read by the exporter itself
        own = settings.otel_exporter_otlp_endpoint
        exporter = OTLPSpanExporter(endpoint=own.rstrip("/") + "/v1/traces") if own else OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)  # once per process: what instrumented libraries find
    celery = CeleryInstrumentor()
    if celery.is_instrumented_by_opentelemetry:
        celery.uninstrument()
    celery.instrument(tracer_provider=provider)
    def instrument_engine(engine: Any) -> None:
        # skip_dep_check: the instrumentation declares "sqlalchemy < 2.1" but its engine events
        # work on 2.1 (tests/routes/test_tracing_routes.py checks the INSERT spans)
        SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=provider, skip_dep_check=True)

    add_engine_hook(instrument_engine)
    provider.lipspline_engine_hook = instrument_engine  # for stop_tracing
    if app is not None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls=EXCLUDED_URLS)
    log.info("tracing on: %s spans exported to %s", service_name, endpoint or type(exporter).__name__)
    return provider


def stop_tracing(provider: Any) -> None:
    """Undo :func:`configure_tracing` in this process (tests: the next engines and tasks are plain again)."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    CeleryInstrumentor().uninstrument()
    remove_engine_hook(provider.lipspline_engine_hook)
    provider.shutdown()
