"""The job queue contract: what travels through the broker, and how a job is sent.

Only a job id travels; the ``jobs`` row is the truth about a job, so a broker
can lose or repeat a message without corrupting anything (a claim takes only a
queued job, or a running one whose lease expired). The API sends, the workers
consume; both build their Celery app here, so the task name, the queues, the
serializer and the acknowledgement rules are written once. Nothing is created
at import: the API builds a sending client on its first job, a worker builds
its app when it starts.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from celery import Celery

from lipspline_platform.jobs import ordered_filesystem
from lipspline_platform.settings import Settings, get_settings

TRAIN_TASK = "lipspline.train"
CPU_QUEUE = "cpu"
GPU_QUEUE = "gpu"


def queue_for_device(device: str) -> str:
    """Jobs that ask for CUDA go to GPU workers; ``auto`` and ``cpu`` run anywhere."""
    return GPU_QUEUE if device == "cuda" else CPU_QUEUE


def broker_options(settings: Settings) -> tuple[str, dict]:
    """The broker URL and transport options for this deployment."""
    if settings.embedded_broker:
        # kombu's filesystem transport: queues are files under the data dir, so the
        # embedded default needs no server. It is at-most-once (see README). Its channel is
        # ordered_filesystem's (make_celery's broker_transport): jobs keep their sending order.
        folder = str(settings.broker_dir / "queue")
        return "filesystem://", {
            "data_folder_in": folder,
            "data_folder_out": folder,
            "processed_folder": str(settings.broker_dir / "processed"),
            "control_folder": str(settings.broker_dir / "control"),
            "store_processed": False,
            # the transport polls its folder; the 1 s default made dispatch take ~1 s
            "polling_interval": 0.1,
        }
    # Redis re-delivers an unacknowledged message after visibility_timeout. With late
    # ack a task is acknowledged only when it ends, so the timeout must exceed the
    # longest task, or a healthy long job would be delivered to a second worker.
    return settings.broker_url, {"visibility_timeout": settings.task_time_limit_s + 3600}


def make_celery(settings: Settings | None = None, include: Sequence[str] = ()) -> Celery:
    """A Celery app configured for long training tasks; ``include`` names the task modules (workers only)."""
    settings = settings or get_settings()
    if settings.embedded_broker:
        settings.ensure_dirs()
    url, transport_options = broker_options(settings)
    app = Celery("lipspline", broker=url, include=list(include))
    app.conf.update(
        broker_transport_options=transport_options,
        # the embedded queue: first in, first out (kombu's own orders same-millisecond messages at random)
        broker_transport=ordered_filesystem.TRANSPORT_PATH if settings.embedded_broker else None,
        broker_connection_retry_on_startup=True,
        # Results live in the database (the jobs row); a result backend would be a second truth.
        task_ignore_result=True,
        # Late ack: a message is acknowledged when the task finishes, so a worker that dies
        # mid-training leaves the message to be delivered again (the task is idempotent).
        task_acks_late=True,
        # With late ack, a task whose worker process is killed is re-queued instead of lost.
        task_reject_on_worker_lost=True,
        # Prefetch 1: a worker busy with an hour-long job must not hold other jobs hostage
        # in its local buffer while idle workers wait.
        worker_prefetch_multiplier=1,
        # Hard and soft time limits bound a runaway job; the soft one lets it record why.
        task_time_limit=settings.task_time_limit_s,
        task_soft_time_limit=max(settings.task_time_limit_s - 60, 30),
        task_default_queue=CPU_QUEUE,
        task_routes={TRAIN_TASK: {"queue": CPU_QUEUE}},
        # JSON only: no pickle anywhere in the message path.
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        # Long CPU-bound tasks: send heartbeats and events without waiting on the task.
        worker_send_task_events=False,
        task_track_started=False,
    )
    return app


_lock = threading.Lock()
_clients: dict[tuple[str, str], Celery] = {}


def celery_client(settings: Settings) -> Celery:
    """One sending client per (broker, data dir) per process; producing is thread-safe in kombu's pools."""
    key = (settings.broker_url, str(settings.data_dir))
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = make_celery(settings)
        return client


def send_job(settings: Settings, job_id: str, queue: str) -> None:
    """Hand the job to the broker; the Celery task id *is* the job id, so the message, the
    ``jobs`` row and every log line about the job share one id (a re-send reuses it)."""
    celery_client(settings).send_task(
        TRAIN_TASK,
        args=[job_id],
        task_id=job_id,
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
