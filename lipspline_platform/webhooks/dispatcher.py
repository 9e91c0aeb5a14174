"""Sends due webhook deliveries, from a thread of every API process and every worker main process.

Any number of dispatchers may run: each delivery is taken by one conditional UPDATE
(``outbox.take_due``), so one attempt is made at a time per delivery. Passes are guarded by
the reconciler's fork lock, so a Celery prefork parent never forks while a pass holds the
connection pool's locks.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import traceback

import httpx

from api_schemas.timestamps import utcnow
from lipspline_platform import reconciler
from lipspline_platform.settings import Settings
from lipspline_platform.webhooks import outbox
from lipspline_platform.webhooks.signing import signed_headers
from lipspline_platform.webhooks.targets import RefusedTargetError, check_target

log = logging.getLogger(__name__)
USER_AGENT = "LipSpline-Webhooks/1"


def attempt(settings: Settings, delivery: outbox.DueDelivery, http: httpx.Client) -> outbox.AttemptResult:
    """One POST of the delivery's payload, signed now; never raises (a failure is a result)."""
    started, began = utcnow(), time.perf_counter()
    status_code, error = None, None
    try:
        if delivery.secret is None:
            raise RefusedTargetError("the tenant has no webhook secret (POST /v1/webhooks/secret)")
        check_target(delivery.url, allow_private=settings.webhook_allow_private)
        body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-LipSpline-Event": delivery.event,
            "X-LipSpline-Delivery": delivery.id,
            "X-LipSpline-Attempt": str(delivery.attempt),
            **signed_headers(delivery.secret, int(time.time()), body),
        }
        response = http.post(delivery.url, content=body, headers=headers)
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}: {response.text[:200]}"
    except (httpx.HTTPError, RefusedTargetError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    return outbox.AttemptResult(started, time.perf_counter() - began, status_code, error)


def deliver_due(settings: Settings) -> int:
    """Send every delivery due now; returns how many attempts were made."""
    due = outbox.take_due(settings, utcnow())
    if not due:
        return 0
    # no redirects: a receiver must not be able to bounce the request to a refused address
    with httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False) as http:
        for delivery in due:
            result = attempt(settings, delivery, http)
            state = outbox.record_attempt(settings, delivery, result)
            log.info("webhook %s attempt %d to %s: %s (%s)", delivery.id, delivery.attempt, delivery.url,
                     result.status_code or result.error, state)  # fmt: skip
    return len(due)


class WebhookDispatcher:
    """The periodic thread; ``start()`` does nothing when ``webhook_poll_s`` is 0."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WebhookDispatcher:
        if self.settings.webhook_poll_s > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lipspline-webhooks", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        period = self.settings.webhook_poll_s
        while not self._stop.wait(period * random.uniform(0.8, 1.2)):
            try:
                with reconciler.fork_guard():
                    deliver_due(self.settings)
            except Exception:  # database unreachable: try again next period
                log.warning("webhook pass failed:\n%s", traceback.format_exc())

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
