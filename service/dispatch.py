"""Sending jobs to the broker. Only the job id travels; the worker reads the rest from the database."""

from __future__ import annotations

import threading

from celery import Celery

from service.settings import Settings

_lock = threading.Lock()
_clients: dict[tuple[str, str], Celery] = {}


def celery_client(settings: Settings) -> Celery:
    """One Celery client per (broker, data dir) per process; producing is thread-safe in kombu's pools."""
    key = (settings.broker_url, str(settings.data_dir))
    with _lock:
        client = _clients.get(key)
        if client is None:
            from worker.celery_app import make_celery

            client = _clients[key] = make_celery(settings)
        return client


def send_job(settings: Settings, job_id: str, queue: str) -> None:
    from worker.celery_app import TRAIN_TASK

    celery_client(settings).send_task(
        TRAIN_TASK,
        args=[job_id],
        queue=queue,
        retry=True,
        retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
    )


def broker_reachable(settings: Settings, timeout_s: float = 2.0) -> bool:
    try:
        with celery_client(settings).connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout_s)
        return True
    except Exception:  # readiness probe: any failure means "not ready"
        return False
