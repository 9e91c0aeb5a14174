"""Where and when a request's arithmetic runs, so large batches cannot starve small ones.

Two decisions, both made before any work is done:

* **When.** A request with a large body (more than ``LARGE_BODY_BYTES``) takes a turn in
  the *large lane*, at most one per core at a time, for everything it does after its body
  has arrived: parsing, the served map, serialising. On an event loop, work runs in the
  order it became ready; without the lane, a burst of 1,000-row predictions would put all
  of their parsing and computing ahead of a 1-row request that arrived just after them.
  With it, the waiting large requests sit on a semaphore, and a small request runs
  between two large ones (the mixed-load section of ``bench/bench_service.py``).
* **Where.** A hop to a worker thread costs tens of microseconds, more than the served
  map of a small batch on a small model, so work below ``THREAD_WORK`` (rows x
  parameters) runs inline on the event loop; heavier work (wide models, whose matrix
  products release the GIL) runs on a thread, so the loop keeps answering meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import anyio.to_thread

T = TypeVar("T")

#: request bodies above this many bytes take turns in the large lane (about 20 bytes per JSON number)
LARGE_BODY_BYTES = 16 * 1024
#: work units (rows x parameters) above which the computation leaves the event loop for a thread
THREAD_WORK = 2_000_000


class ComputePlacement:
    """The large lane and the inline-or-thread choice of one API process (module docstring)."""

    def __init__(self, lanes: int | None = None, thread_work: int = THREAD_WORK) -> None:
        self.lanes = lanes or os.cpu_count() or 1
        self.thread_work = thread_work
        self._lane: asyncio.Semaphore | None = None  # made on first use, inside the event loop

    @contextlib.asynccontextmanager
    async def turn(self, body_bytes: int) -> AsyncIterator[None]:
        """Hold a place in the large lane for the duration of the block, if the body is large."""
        if body_bytes <= LARGE_BODY_BYTES:
            yield
            return
        if self._lane is None:
            self._lane = asyncio.Semaphore(self.lanes)
        async with self._lane:
            yield

    async def run(self, work: int, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` inline, or on a worker thread when ``work`` is above ``thread_work``."""
        if work <= self.thread_work:
            return function(*args)
        return await anyio.to_thread.run_sync(function, *args)
