"""Prometheus metrics of the API, and ``GET /metrics``.

Request metrics are labelled by the matched route's *template* (``/v1/models/{model_id}``),
never the raw path, so the number of series is bounded by the number of routes, whatever
ids clients send; a path that matches no route is ``<unmatched>``. No metric has a tenant
or key label (cardinality, and a scrape must not reveal who uses the service).

``/metrics`` answers without a key by default: scrapers usually have none, and these
numbers carry no tenant data. ``LIPSPLINE_METRICS_PUBLIC=false`` makes it need an ``admin``
key (Prometheus sends one with ``authorization: {credentials: ...}``). The jobs-by-status
gauge is read from the database at each scrape (``lipspline_platform.observability.metrics.JobsByStatus``).
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from lipspline_platform.observability.metrics import MULTIPROCESS_DIR_ENV, JobsByStatus, multiprocess_registry

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: the route label of a request no route matched (404s of unknown paths)
UNMATCHED = "<unmatched>"

HTTP_REQUESTS = Counter(
    "lipspline_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "lipspline_http_request_duration_seconds",
    "Time from a request's arrival to its last response byte",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
PREDICT_ROWS = Histogram(
    "lipspline_predict_rows",
    "Input rows per predict request",
    ["format"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000),
)
CERTIFY_DURATION = Histogram(
    "lipspline_certify_duration_seconds", "Time to answer POST /v1/models/{id}/certify", buckets=LATENCY_BUCKETS
)
MODEL_CACHE_HITS = Counter("lipspline_model_cache_hits_total", "Model lookups answered by the loaded-model cache")
MODEL_CACHE_MISSES = Counter("lipspline_model_cache_misses_total", "Model lookups that loaded the model")
MODEL_CACHE_EVICTIONS = Counter("lipspline_model_cache_evictions_total", "Loaded models dropped to make room")
MODEL_LOAD_DURATION = Histogram(
    "lipspline_model_load_duration_seconds",
    "Time to load a model (read, sha256 check, parse, re-certify if needed)",
    buckets=LATENCY_BUCKETS,
)
IDEMPOTENT_REPLAYS = Counter(
    "lipspline_idempotent_replays_total", "Responses replayed for a repeated Idempotency-Key", ["route"]
)
PROBLEMS = Counter(
    "lipspline_http_problems_total", "Error responses (problem+json) by status and problem type", ["status", "type"]
)
RATE_LIMITED = Counter("lipspline_rate_limited_total", "Requests refused (429) by the per-key rate limit")
QUOTA_EXCEEDED = Counter("lipspline_quota_exceeded_total", "Requests refused by a tenant quota", ["quota"])


def count_problem(status: int, kind: str) -> None:
    PROBLEMS.labels(str(status), kind).inc()


def scrape_registries(database_url: str) -> tuple[CollectorRegistry, CollectorRegistry]:
    """This process's metrics (or its node's, in multiprocess mode) and the jobs gauge from the database."""
    process = multiprocess_registry() if os.environ.get(MULTIPROCESS_DIR_ENV) else REGISTRY
    jobs = CollectorRegistry(auto_describe=False)
    jobs.register(JobsByStatus(database_url))
    return process, jobs
