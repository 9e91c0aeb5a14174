"""Where a request's arithmetic runs: on the event loop when it is small, on a few threads when it is not.

A hop to a worker thread costs tens of microseconds, more than the served map of a
small batch on a small model, so small work runs inline on the event loop. Large work
(a 1,000-row batch, a wide model) goes to worker threads, at most one per core at a time:
more threads would not compute faster (the GIL and the cores are shared), they would
only delay the event loop, and with it every small request queued behind them. So a
burst of large predictions queues for the threads while 1-row predictions keep being
answered (`bench/bench_service.py`'s mixed-load section measures it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")

#: work units (rows x parameters) below which the computation runs on the event loop
INLINE_WORK = 100_000


class ComputePlacement:
    """Runs a computation inline or on the bounded thread pool, by its size."""

    def __init__(self, threads: int | None = None, inline_work: int = INLINE_WORK) -> None:
        self.threads = threads or os.cpu_count() or 1
        self.inline_work = inline_work
        self._limiter: anyio.CapacityLimiter | None = None  # made on first use, inside the event loop

    async def run(self, work: int, function: Callable[..., T], *args: object) -> T:
        if work <= self.inline_work:
            return function(*args)
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.threads)
        return await anyio.to_thread.run_sync(function, *args, limiter=self._limiter)
