"""One periodic background thread, the shape the reconciler and the webhook dispatcher share.

Both run in every API and worker process, wake every period (jittered, so many processes do
not query the database at the same instant), do one pass, log a failed pass and try again next
period: a database or broker that is down for a while must not kill the thread. Subclasses
say what a pass does (``tick``) and, if they know better than the period, when the next one is
due (``next_wait``).
"""

from __future__ import annotations

import logging
import random
import threading
import traceback
from typing import Self

log = logging.getLogger(__name__)


class PeriodicThread:
    """A daemon thread calling :meth:`tick` every ``period_s`` (0: never started)."""

    def __init__(self, name: str, period_s: float) -> None:
        self.name, self.period_s = name, period_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self.period_s > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return self

    def tick(self) -> None:
        """One pass; an exception is logged and the next pass comes a period later."""
        raise NotImplementedError

    def next_wait(self) -> float:
        """Seconds to the next pass: the period, jittered down only (no gap ever exceeds it)."""
        return self.period_s * random.uniform(0.8, 1.0)

    def _run(self) -> None:
        while not self._stop.wait(self.next_wait()):
            try:
                self.tick()
            except Exception:  # database or broker unreachable: try again next period
                log.warning("%s: pass failed:\n%s", self.name, traceback.format_exc())

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
