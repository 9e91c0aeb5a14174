"""The workers' Celery app: the queue contract of ``lipspline_platform.jobs.queue`` plus the task module.

Built when a worker starts (``python -m worker``), never at import. ``celery_app``
is a lazy module attribute for the ``celery -A worker.celery_app:celery_app`` command
line (the compose health check's ``inspect ping``): it is created on first access.
"""

from __future__ import annotations

from functools import cache

from celery import Celery

from lipspline_platform.jobs.queue import make_celery
from lipspline_platform.settings import Settings

#: the modules whose tasks a worker runs
TASK_MODULES = ("worker.tasks",)


def worker_app(settings: Settings | None = None) -> Celery:
    return make_celery(settings, include=TASK_MODULES)


@cache
def _default_app() -> Celery:
    return worker_app()


def __getattr__(name: str) -> Celery:
    if name == "celery_app":
        return _default_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
