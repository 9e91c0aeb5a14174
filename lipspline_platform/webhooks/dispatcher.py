"""Sends due webhook deliveries, from a thread of every API process and every worker main process.

Any number of dispatchers may run: each delivery is taken by one conditional UPDATE
(``outbox.take_due``), so one attempt is made at a time per delivery: an attempt ends by its
deadline (``webhook_timeout_s``, ``transport.py``) and the lease it was taken under lasts
longer (``Settings.webhook_lease``, checked when the settings are read), so no other
dispatcher can take it while it is still in flight.

Only the database bookkeeping (taking due deliveries, recording an attempt) holds the
reconciler's fork lock, so a Celery prefork parent never forks while this thread holds the
connection pool's locks. Sending never holds it: a fork (a pool child, the certificate
step's solver child, in a ``--pool solo`` worker or ``lipspline serve`` too) waits only for
that short bookkeeping, never for a receiver (issue 26: a receiver dripping one byte every
4 s held the lock and made another tenant's 1-epoch job take 57.6 s instead of 0.5 s). Each
delivery is sent on its own thread, at most ``webhook_concurrency`` at once, and the
dispatcher takes no more deliveries than it has free threads, so a slow receiver holds one
thread for at most one deadline and delays only its own deliveries. Of those threads one
tenant holds at most ``webhook_concurrency_per_tenant``: a tenant with many slow receivers
fills its own share, never the threads another tenant's deliveries are waiting for.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
import traceback
from collections import Counter
from collections.abc import Mapping
from datetime import datetime

import httpcore

from api_schemas.timestamps import utcnow
from lipspline_platform.jobs.fork_guard import fork_guard
from lipspline_platform.periodic import PeriodicThread
from lipspline_platform.settings import Settings
from lipspline_platform.webhooks import outbox, transport
from lipspline_platform.webhooks.signing import signed_headers
from lipspline_platform.webhooks.targets import RefusedTargetError, check_target

log = logging.getLogger(__name__)
USER_AGENT = "LipSpline-Webhooks/1"
#: characters of an error answer's body kept in the attempt's record (shown to the tenant)
ERROR_BODY_CHARS = 200


def attempt(settings: Settings, delivery: outbox.DueDelivery, *, ssl_context: ssl.SSLContext | None = None
            ) -> outbox.AttemptResult:
    """One POST of the delivery's payload, signed now, ended by the deadline; never raises (a failure is a result).

    Holds no lock: it may wait on the receiver for up to ``webhook_timeout_s``.
    """
    started, began = utcnow(), time.perf_counter()
    limit = settings.webhook_timeout_s
    deadline = time.monotonic() + limit
    status_code, error = None, None
    try:
        if delivery.secret is None:
            raise RefusedTargetError(
                delivery.secret_problem or "the tenant has no webhook secret (POST /v1/webhooks/secret)"
            )
        # resolved here, once: the request goes to exactly the addresses this check accepted
        target = check_target(delivery.url, allow_private=settings.webhook_allow_private, timeout_s=limit)
        body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-LipSpline-Event": delivery.event,
            "X-LipSpline-Delivery": delivery.id,
            "X-LipSpline-Attempt": str(delivery.attempt),
            **signed_headers(delivery.secret, int(time.time()), body),
        }
        answer = transport.post(target, body, headers, deadline=deadline, ssl_context=ssl_context)
        status_code = answer.status
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}: {answer.body_head.decode('utf-8', 'replace')[:ERROR_BODY_CHARS]}"
    except RefusedTargetError as exc:
        error = f"RefusedTargetError: {exc}"
    except httpcore.TimeoutException as exc:
        error = f"{type(exc).__name__}: no answer within the {limit:g} s deadline"
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    return outbox.AttemptResult(started, time.perf_counter() - began, status_code, error)


def deliver(settings: Settings, delivery: outbox.DueDelivery, *, ssl_context: ssl.SSLContext | None = None) -> str:
    """Send one taken delivery, then record the attempt; returns the delivery's new state."""
    result = attempt(settings, delivery, ssl_context=ssl_context)  # no lock held: only this delivery waits
    with fork_guard():  # database bookkeeping: no fork while the pool's locks are held
        state = outbox.record_attempt(settings, delivery, result)
    log.info("webhook %s attempt %d to %s: %s (%s)", delivery.id, delivery.attempt, delivery.url,
             result.status_code or result.error, state)
    return state


def take_due(settings: Settings, limit: int, due_by: datetime | None = None,
             in_flight: Mapping[str, int] | None = None) -> list[outbox.DueDelivery]:
    """Deliveries due now, taken (leased) by this process, within each tenant's share of the senders
    (``in_flight``: the ones this process sends now, by tenant); under the fork lock, as all bookkeeping."""
    with fork_guard():
        return outbox.take_due(settings, utcnow(), limit=limit, due_by=due_by,
                               per_tenant=settings.webhook_concurrency_per_tenant, in_flight=in_flight)


def deliver_due(settings: Settings, limit: int = 20) -> int:
    """Send the deliveries due now, one after another, on this thread; returns how many attempts were made.

    The synchronous form of a dispatcher pass (tests, tools); the dispatcher thread sends
    each delivery on a thread of its own instead. Each delivery is taken just before it is
    sent, so its lease covers its own attempt, not the attempts queued before it; only those
    due when the pass began are sent (a failed one, due again after its backoff, is not retried here).
    """
    began, made = utcnow(), 0
    while made < limit and (due := take_due(settings, 1, due_by=began)):
        deliver(settings, due[0])
        made += 1
    return made


class WebhookDispatcher(PeriodicThread):
    """The periodic thread; ``start()`` does nothing when ``webhook_poll_s`` is 0."""

    def __init__(self, settings: Settings) -> None:
        super().__init__("lipspline-webhooks", settings.webhook_poll_s)
        self.settings = settings
        #: the sending threads and the tenant each sends for
        self._senders: dict[threading.Thread, str] = {}

    def tick(self) -> None:
        self.dispatch_once()

    def dispatch_once(self) -> int:
        """Take as many due deliveries as there are free sender threads (within each tenant's share) and send them."""
        self._senders = {sender: tenant for sender, tenant in self._senders.items() if sender.is_alive()}
        free = self.settings.webhook_concurrency - len(self._senders)
        if free <= 0:
            return 0
        due = take_due(self.settings, free, in_flight=Counter(self._senders.values()))
        for delivery in due:
            sender = threading.Thread(target=self._send, args=(delivery,), name="lipspline-webhook-send", daemon=True)
            self._senders[sender] = delivery.tenant_id
            sender.start()
        return len(due)

    def _send(self, delivery: outbox.DueDelivery) -> None:
        try:
            deliver(self.settings, delivery)
        except Exception:  # recording failed (database unreachable): the lease ends and it is sent again
            log.warning("webhook %s: attempt %d not recorded:\n%s", delivery.id, delivery.attempt,
                        traceback.format_exc())

    def stop(self, timeout_s: float = 15.0) -> None:
        until = time.monotonic() + timeout_s
        super().stop(timeout_s)
        for sender in list(self._senders):  # each ends by its deadline; a lost one is sent again after its lease
            sender.join(max(until - time.monotonic(), 0.0))
        self._senders.clear()
