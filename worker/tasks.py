"""Celery task entry points; the work itself is in `worker.training_job`.

``shared_task`` binds the task to whichever app the worker built
(``worker.celery_app.worker_app``), so importing this module creates no app.
"""

from __future__ import annotations

import socket

from celery import shared_task
from celery.signals import worker_init, worker_process_init, worker_process_shutdown, worker_ready, worker_shutdown

from lipspline_platform.db.engine import dispose_all
from lipspline_platform.jobs import background
from lipspline_platform.jobs.queue import TRAIN_TASK
from lipspline_platform.observability import metrics, structured_logging
from lipspline_platform.settings import get_settings
from worker import training_job
from worker.training_job import run_training_job


@worker_init.connect
def _preload(**_kwargs) -> None:
    # In the main process, before the pool forks: what the first job of every pool child would
    # otherwise import (worker-loss recovery: a rescuing worker starts the job without it).
    training_job.preload()


@worker_process_init.connect
def _fresh_connections(**_kwargs) -> None:
    # A prefork child inherits the parent's pooled DB sockets; using them from two
    # processes corrupts the protocol stream, so every child starts with none.
    dispose_all()


@worker_ready.connect
def _start_reconciler(**_kwargs) -> None:
    # In the worker's main process (prefork) or its only process (solo): every worker host
    # re-queues jobs whose worker died and re-sends jobs the broker lost.
    settings = get_settings()
    background.start_in_worker(settings)
    if settings.worker_metrics_port:
        metrics.serve_worker_metrics(settings.worker_metrics_port)


@worker_process_shutdown.connect
def _forget_live_gauges(pid: int | None = None, **_kwargs) -> None:
    # a pool child exits (Celery replaces crashed ones): its "current job" series go with it
    if pid is not None:
        metrics.process_exited(pid)


@worker_shutdown.connect
def _stop_reconciler(**_kwargs) -> None:
    background.stop_in_worker()


@shared_task(name=TRAIN_TASK, bind=True)
def train(self, job_id: str) -> None:
    # the task id is the job id (lipspline_platform.jobs.queue.send_job): one id in the message, the row, the logs
    worker_host = self.request.hostname or socket.gethostname()
    with structured_logging.bound(job_id=job_id, worker=worker_host):
        run_training_job(get_settings(), job_id, worker_host=worker_host)
