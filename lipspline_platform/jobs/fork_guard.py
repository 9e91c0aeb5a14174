"""The lock periodic database work holds, so no process forks in the middle of it.

A Celery prefork main process forks pool children while a periodic thread may be
mid-pass, holding locks (engine registry, connection pool) a child would inherit locked.
Each pass holds _active; a fork waits for the pass to end, and the child gets a fresh lock.
Every fork waits on it, the certificate step's solver child included (in a `--pool solo`
worker and under `lipspline serve` training runs in the process that forks), so it may only
be held for database work that ends by itself: never while waiting on anything a tenant
controls. The webhook dispatcher holds it to take and record deliveries, not to send them
(issue 26: a receiver dripping one byte every 4 s held it for 80 s per attempt).
"""

from __future__ import annotations

import os
import threading

_active = threading.Lock()


def _after_fork_in_child() -> None:
    global _active
    _active = threading.Lock()


def fork_guard() -> threading.Lock:
    """The lock periodic database work holds (reconciler passes, webhook bookkeeping): no fork meanwhile."""
    return _active


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=lambda: _active.acquire(),
        after_in_parent=lambda: _active.release(),
        after_in_child=_after_fork_in_child,
    )
