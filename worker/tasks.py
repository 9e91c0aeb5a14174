"""Celery task entry points; the work itself is in `worker.training_job`.

``shared_task`` binds the task to whichever app the worker built
(``worker.celery_app.worker_app``), so importing this module creates no app.
"""

from __future__ import annotations

import socket

from celery import shared_task
from celery.signals import worker_process_init, worker_ready, worker_shutdown

from lipspline_platform import reconciler
from lipspline_platform.db.engine import dispose_all
from lipspline_platform.queue import TRAIN_TASK
from lipspline_platform.settings import get_settings
from worker.training_job import run_training_job


@worker_process_init.connect
def _fresh_connections(**_kwargs) -> None:  # noqa: ANN003
    # A prefork child inherits the parent's pooled DB sockets; using them from two
    # processes corrupts the protocol stream, so every child starts with none.
    dispose_all()


@worker_ready.connect
def _start_reconciler(**_kwargs) -> None:  # noqa: ANN003
    # In the worker's main process (prefork) or its only process (solo): every worker host
    # re-queues jobs whose worker died and re-sends jobs the broker lost.
    reconciler.start_in_worker(get_settings())


@worker_shutdown.connect
def _stop_reconciler(**_kwargs) -> None:  # noqa: ANN003
    reconciler.stop_in_worker()


@shared_task(name=TRAIN_TASK, bind=True)
def train(self, job_id: str) -> None:  # noqa: ANN001
    run_training_job(get_settings(), job_id, worker_host=self.request.hostname or socket.gethostname())
