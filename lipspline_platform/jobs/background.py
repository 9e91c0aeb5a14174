"""The background threads of a ``lipspline worker`` main process: the reconciler and the webhook dispatcher.

The API starts its own pair in its lifespan (``service/app.py``); a worker starts them once
it is ready (``worker/tasks.py``), in its main process only, and stops them on shutdown.
"""

from __future__ import annotations

from lipspline_platform.jobs.reconciler import Reconciler
from lipspline_platform.settings import Settings
from lipspline_platform.webhooks.dispatcher import WebhookDispatcher

_running: tuple[Reconciler, WebhookDispatcher] | None = None


def start_in_worker(settings: Settings) -> None:
    """Called once in a ``lipspline worker`` main process when it is ready (idempotent)."""
    global _running
    if _running is None:
        _running = (Reconciler(settings).start(), WebhookDispatcher(settings).start())


def stop_in_worker() -> None:
    global _running
    if _running is not None:
        for thread in _running:
            thread.stop()
        _running = None
