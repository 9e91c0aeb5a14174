"""Prometheus metrics of jobs: what the worker, the reconciler and the jobs table say about training.

Defined here, below both the API and the worker, because the reconciler (which runs in
both) counts lease expiries, and the API reads the jobs-by-status gauge from the database.
Names follow Prometheus conventions: the ``lipspline_`` prefix, base units (``_seconds``),
``_total`` on counters; the README's "Metrics" table lists every one.

Processes:

* an API process serves its own registry at ``GET /metrics`` (``service/http/metrics.py``);
* a worker *node* (``python -m worker``: a Celery main process and its prefork children,
  which do the training) uses prometheus-client's multiprocess mode: every process writes
  its values to files in a directory private to the node, and the main process serves the
  sum on ``LIPSPLINE_WORKER_METRICS_PORT``. One port per node, whatever the concurrency,
  and children that Celery replaces keep their counts (``metrics_dir.py`` makes the
  directory before prometheus-client is imported).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from api_schemas import JobStatus
from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.tables import JobRow

log = logging.getLogger(__name__)

#: set (by ``metrics_dir.py``) in a worker node's processes: prometheus-client's multiprocess mode
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: seconds, from sub-second certificates of tiny nets to hour-long trainings
LONG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)

JOB_QUEUE_WAIT = Histogram(
    "lipspline_job_queue_wait_seconds",
    "Time from a job's submission (or re-queue) to a worker claiming it",
    buckets=LONG_BUCKETS,
)
JOB_TRAINING_DURATION = Histogram(
    "lipspline_job_training_duration_seconds", "Wall time of fit() for one job attempt", buckets=LONG_BUCKETS
)
JOB_EPOCH_DURATION = Histogram(
    "lipspline_job_epoch_duration_seconds", "Wall time of one training epoch", buckets=LONG_BUCKETS
)
JOB_EPOCHS = Counter("lipspline_job_epochs_total", "Training epochs finished (rate() is epochs per second)")
JOB_CERTIFICATE_DURATION = Histogram(
    "lipspline_job_certificate_duration_seconds",
    "Time to certify a trained model (Lipschitz bounds, lower bounds) before it is stored",
    buckets=LONG_BUCKETS,
)
JOB_ATTEMPTS = Counter("lipspline_job_attempts_total", "Claims of a job by a worker (first runs and re-runs)")
JOBS_FINISHED = Counter(
    "lipspline_jobs_finished_total", "Jobs a worker finished, by final status", ["status"]
)
JOB_FAILURES = Counter(
    "lipspline_job_failures_total",
    "Failed jobs by reason (exception type, dataset_deleted, lost_worker)",
    ["reason"],
)
LEASE_EXPIRIES = Counter(
    "lipspline_job_lease_expiries_total", "Running jobs whose worker stopped renewing the lease (reconciler)"
)
JOB_REQUEUES = Counter("lipspline_job_requeues_total", "Jobs re-queued after their lease expired (reconciler)")
JOB_RESENDS = Counter(
    "lipspline_job_resends_total", "Queued jobs re-sent to the broker because the message may be lost (reconciler)"
)
# liveall: each worker process reports its own series (a ``pid`` label is added), and the
# series of a process that exits go with it; a finished job's series reads 0 until then.
WORKER_CURRENT_JOB = Gauge(
    "lipspline_worker_current_job",
    "1 while this worker process trains the job",
    ["job_id"],
    multiprocess_mode="liveall",
)


class JobsByStatus(Collector):
    """``lipspline_jobs{status}``: jobs in each status, read from the database at scrape time.

    Read, not counted: every API replica reports the same true numbers (a counter kept in
    memory would only know what its own process saw). One grouped COUNT over an indexed
    column per scrape; a database that does not answer yields
    ``lipspline_jobs_scrape_error 1`` instead of a failed scrape.
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # unchecked: the values come from the database, only at collect()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("lipspline_jobs", "Jobs by status (from the database)", labels=["status"])
        error = GaugeMetricFamily("lipspline_jobs_scrape_error", "1 when the jobs table could not be read")
        try:
            with session_scope(self.database_url) as session:
                counts = dict(session.execute(select(JobRow.status, func.count()).group_by(JobRow.status)).all())
        except Exception as exc:  # a scrape reports, it does not raise
            log.warning("jobs gauge: the database did not answer (%s)", type(exc).__name__)
            error.add_metric([], 1)
            yield error
            return
        for status in JobStatus:
            jobs.add_metric([status.value], counts.get(status.value, 0))
        error.add_metric([], 0)
        yield jobs
        yield error


def multiprocess_registry() -> CollectorRegistry:
    """What a node in multiprocess mode serves: the sum over its processes' metric files."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def serve_worker_metrics(port: int) -> None:
    """Serve the node's metrics on ``port`` (in the Celery main process, once it is ready)."""
    from prometheus_client import start_http_server

    start_http_server(port, registry=multiprocess_registry())
    log.info("worker metrics on port %d", port)


def process_exited(pid: int) -> None:
    """A pool process exited: drop its live gauges (its counters and histograms are kept)."""
    if os.environ.get(MULTIPROCESS_DIR_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
