"""The reconciler: the database, not the broker, decides what still has to run.

Run every ``reconcile_every_s`` from a thread in every ``lipspline worker`` main
process and in every API process (``lipspline serve`` / ``lipspline api``), and just after
the first running job's lease deadline when that comes sooner (``Reconciler._next_wait``).
One pass:

(a) a ``running`` job whose lease expired (no heartbeat for ``lease_timeout_s``: its
    worker died, was SIGKILLed, or lost the database) goes back to ``queued`` with
    a note in ``error`` and its attempt count kept, and is sent again; a worker
    claiming it resumes from its last checkpoint in ``job_checkpoints``. Once it
    has had ``max_attempts`` runs it is ``failed`` instead, with a clear error; a job
    whose cancellation was requested is ``cancelled``.
(b) a ``queued`` job last sent more than ``redispatch_after_s`` ago is sent again:
    the broker may have lost the message (Redis restarted or flushed, the embedded
    queue deleted). A duplicate message is harmless: a claim takes only a queued job
    or one whose lease expired, so the extra delivery does nothing.
(c) every running sweep is advanced (``sweeps.advance``): trials launched up to its
    concurrency, the sweep closed once its trials are done. The worker does this right
    after a trial ends; this pass makes it survive a crash or restart in between
    (advancing is idempotent under a lock on the sweep row).

Safe in any number of processes at once: each action is one conditional UPDATE
(``WHERE status = … AND attempts = … AND heartbeat_at < cutoff``), so when two
reconcilers see the same job only the one whose UPDATE matched a row acts.
"""

from __future__ import annotations

import logging
import random
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from api_schemas import JobStatus
from api_schemas.timestamps import utcnow
from lipspline_platform import sweeps
from lipspline_platform.jobs import lifecycle
from lipspline_platform.jobs.fork_guard import fork_guard
from lipspline_platform.jobs.queue import send_job
from lipspline_platform.observability import metrics
from lipspline_platform.periodic import PeriodicThread
from lipspline_platform.settings import Settings

log = logging.getLogger(__name__)

Sender = Callable[[Settings, str, str], None]


@dataclass
class Outcome:
    """What one pass did (job ids), for logs and tests."""

    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    launched: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.requeued or self.failed or self.cancelled or self.resent or self.launched)


def reconcile_once(settings: Settings, send: Sender | None = None, now: datetime | None = None) -> Outcome:
    """One pass over the jobs table; see the module docstring."""
    send = send_job if send is None else send
    now = now or utcnow()
    outcome = Outcome()
    to_send: list[tuple[str, str]] = []
    buckets = {JobStatus.queued: outcome.requeued, JobStatus.failed: outcome.failed}
    buckets[JobStatus.cancelled] = outcome.cancelled

    # (a) running jobs whose worker stopped renewing the lease
    for job in lifecycle.stale_jobs(settings, now):
        acted = lifecycle.expire_lease(settings, job, now)
        if acted is None:
            continue  # renewed meanwhile, or another reconciler acted first
        status, note = acted
        metrics.LEASE_EXPIRIES.inc()
        if status == JobStatus.queued:
            metrics.JOB_REQUEUES.inc()
        elif status == JobStatus.failed:
            metrics.JOB_FAILURES.labels("lost_worker").inc()
        buckets[status].append(job.id)
        log.warning("job %s: %s -> %s", job.id, note, status)
        if status == JobStatus.queued:
            to_send.append((job.id, job.queue))

    # (b) queued jobs whose message the broker may have lost
    for job_id, queue in lifecycle.unsent_jobs(settings, now):
        if lifecycle.mark_dispatched(settings, job_id, now):
            outcome.resent.append(job_id)
            metrics.JOB_RESENDS.inc()
            to_send.append((job_id, queue))

    # the re-sends go out before the sweeps are looked at: a job marked re-sent is sent at once
    _send_all(settings, send, to_send, now)

    # (c) sweeps whose trials finished without the worker's advance (crash, restart)
    for sweep_id in sweeps.running_sweeps(settings):
        try:
            launched = sweeps.advance(settings, sweep_id)
        except Exception:  # one sweep's trouble must not stop the pass for the jobs
            log.warning("sweep %s: advance failed:\n%s", sweep_id, traceback.format_exc())
            continue
        outcome.launched.extend(job_id for job_id, _ in launched)
        _send_all(settings, send, launched, now)

    if outcome.resent:
        log.info("re-sent %d queued job(s) the broker may have lost: %s", len(outcome.resent), outcome.resent)
    return outcome


def _send_all(settings: Settings, send: Sender, to_send: list[tuple[str, str]], now: datetime) -> None:
    """Hand each (job id, queue) to the broker; one that fails is marked unsent for the next pass."""
    for job_id, queue in to_send:
        try:
            send(settings, job_id, queue)
        except Exception as exc:  # broker down: mark it unsent so the next pass tries again
            log.warning("job %s: re-send failed (%s: %s); retrying next pass", job_id, type(exc).__name__, exc)
            lifecycle.mark_unsent(settings, job_id, now)


class Reconciler(PeriodicThread):
    """The periodic thread; ``start()`` does nothing when ``reconcile_every_s`` is 0."""

    def __init__(self, settings: Settings, send: Sender | None = None) -> None:
        super().__init__("lipspline-reconciler", settings.reconcile_every_s)
        self.settings, self.send = settings, send

    def tick(self) -> None:
        with fork_guard():
            reconcile_once(self.settings, self.send)

    def next_wait(self) -> float:
        """Seconds to the next pass: one period at most, jittered down only (reconcilers of many
        processes do not all query at the same instant, and no gap between passes exceeds the
        period), and sooner when a running job's lease runs out first: the pass then comes just
        after that lease's deadline, so a dead worker is noticed at lease timeout after its last
        heartbeat, not up to a period later (the lease rule itself is unchanged). A process that
        starts (an API restarted) also looks at a lease about to run out."""
        period = self.period_s
        wait = super().next_wait()
        try:
            with fork_guard():  # database work: no fork meanwhile
                expiry = lifecycle.next_lease_expiry(self.settings)
        except Exception:  # database unreachable: the next pass after a period
            return wait
        if expiry is not None:
            due_in = (expiry - utcnow()).total_seconds() + random.uniform(0.05, 0.25)
            # floor: a lease found expired but not yet taken back (a pass racing a heartbeat)
            # is looked at again soon, never in a busy loop
            wait = min(wait, max(due_in, min(period, 0.5)))
        return wait
