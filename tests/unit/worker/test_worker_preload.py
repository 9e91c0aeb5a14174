"""Worker-loss recovery: a rescuing worker's pool child starts a job without first importing
torch._dynamo (2-3.5 s on a loaded 2-core machine): the worker's main process imports it when
the worker starts (Celery's ``worker_init``), before the pool forks its children."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

CHECK = """
import sys
from celery.signals import worker_init
import worker.tasks
assert "torch._dynamo" not in sys.modules, "imported already: the check below would prove nothing"
assert any(ref() is worker.tasks._preload for _, ref in worker_init.receivers), "not connected to worker_init"
worker_init.send(sender=None)
assert "torch._dynamo" in sys.modules
import threading
assert threading.active_count() == 1, [t.name for t in threading.enumerate()]  # no thread before the fork
"""


def test_worker_init_preloads_what_the_first_job_would_import() -> None:
    # a fresh interpreter: other tests in this process may have imported torch._dynamo
    result = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
