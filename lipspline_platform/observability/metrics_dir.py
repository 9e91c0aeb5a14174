"""The directory where the processes of one node write their metrics (prometheus-client multiprocess mode).

Used by a worker node (a Celery main process and its prefork children) and by
``lipspline api --workers N`` with N > 1 (uvicorn's processes share one port, so a scrape
reaches one of them at random; the sum over their files is the node's truth).

Kept apart from ``lipspline_platform.observability.metrics`` on purpose: prometheus-client picks its
multiprocess mode when it is *imported*, so the directory must be exported before
anything imports it, and this module imports nothing that does.
"""

from __future__ import annotations

import os
import shutil
import tempfile

#: the environment variable prometheus-client reads (at import) to switch to multiprocess mode
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir() -> str:
    """A fresh directory for this node's metric files, exported for the pool's children to inherit.

    A fresh one per start: files left by an earlier run would add its counts to this one's.
    """
    existing = os.environ.get(MULTIPROCESS_DIR_ENV)
    if existing:
        return existing
    folder = tempfile.mkdtemp(prefix="lipspline-worker-metrics-")
    os.environ[MULTIPROCESS_DIR_ENV] = folder
    return folder


def remove_multiprocess_dir(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)
