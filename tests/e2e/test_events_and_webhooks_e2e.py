"""PostgreSQL + Redis with TWO API processes and one worker: the event stream resumes on the other
API process without loss, and webhooks reach a local receiver signed, retried and recorded.

Events come from the database, so a client that reads part of a job's stream from API A and
reconnects to API B with ``Last-Event-ID`` must get exactly the rest. Webhooks go to a
receiver on 127.0.0.1 (allowed here by ``LIPSPLINE_WEBHOOK_ALLOW_PRIVATE=1``) that checks
every signature with the SDK's ``verify_webhook``; one of its paths fails twice first.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from lipspline.data import make_circle
from lipspline_client import Client, verify_webhook
from tests.conftest import E2E_REDIS_DB
from tests.support.processes import Deployment, Process, free_port, lipspline_argv
from tests.support.services import fresh_postgres_database, fresh_redis_url

pytestmark = pytest.mark.e2e
CONFIG = {"architecture": {"hidden": [4]}, "training": {"epochs": 12, "batch_size": 32, "seed": 1}, "device": "cpu"}


class TwoApis:
    """A deployment plus a second API process on the same database and broker."""

    def __init__(self, deployment: Deployment, second: Process, second_url: str) -> None:
        self.deployment, self.second, self.second_url = deployment, second, second_url


@pytest.fixture(scope="module")
def apis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoApis]:
    workdir = tmp_path_factory.mktemp("two_apis")
    url, drop = fresh_postgres_database()
    env = {"LIPSPLINE_DATA_DIR": str(workdir / "data"), "LIPSPLINE_DATABASE_URL": url,
           "LIPSPLINE_BROKER_URL": fresh_redis_url(E2E_REDIS_DB + 1), "LIPSPLINE_WEBHOOK_ALLOW_PRIVATE": "1",
           "LIPSPLINE_WEBHOOK_POLL_S": "0.2", "LIPSPLINE_WEBHOOK_BACKOFF_S": "0.2"}
    deployment = Deployment(env, workdir, embedded=False, workers=1)
    try:
        with deployment.running():
            port = free_port()
            second = Process(lipspline_argv("api", "--port", str(port)), deployment.env, workdir / "api2.log").start()
            second_url = f"http://127.0.0.1:{port}"
            try:
                _wait_ready(second_url)
                yield TwoApis(deployment, second, second_url)
            except BaseException:
                print(second.log_tail())
                raise
            finally:
                second.stop()
    finally:
        drop()


def _wait_ready(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


def _submit(client: Client, **kwargs: str):
    data = make_circle(200, seed=2)
    dataset = client.datasets.upload((data.X, data.y), name="circle")
    return client.jobs.submit(dataset, CONFIG, **kwargs)


def test_the_stream_resumes_on_the_other_api_process_without_loss(apis: TwoApis) -> None:
    key = apis.deployment.api_key
    with Client(apis.deployment.url, key) as first, Client(apis.second_url, key) as second:
        job = _submit(first)
        seen = []
        for event in first.jobs.get(job.id).events():  # API A: read until the first epoch, then drop
            seen.append(event)
            if event.type == "epoch":
                break
        rest = list(second.jobs.get(job.id).events(after=seen[-1].seq))  # API B, Last-Event-ID
        everything = list(second.jobs.get(job.id).events())
    seqs = [e.seq for e in seen + rest]
    assert seqs == list(range(1, len(seqs) + 1)), seqs  # no gap, no repeat
    assert [e.model_dump() for e in seen + rest] == [e.model_dump() for e in everything]
    assert [e.data["epoch"] for e in everything if e.type == "epoch"] == list(range(1, 13))
    assert everything[-1].type == "final" and everything[-1].data["status"] == "succeeded"


class Receiver:
    """A webhook receiver on 127.0.0.1: ``/ok`` accepts, ``/flaky`` answers 500 twice, then 200."""

    def __init__(self) -> None:
        self.secret = ""
        self.received: list[dict] = []
        self.flaky_calls = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                verified = verify_webhook(receiver.secret, body, dict(self.headers))
                receiver.received.append({"path": self.path, "verified": verified, "event": json.loads(body),
                                          "delivery": self.headers["X-LipSpline-Delivery"]})
                status = 200
                if self.path == "/flaky":
                    receiver.flaky_calls += 1
                    status = 500 if receiver.flaky_calls <= 2 else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_webhooks_are_signed_retried_and_every_attempt_recorded(apis: TwoApis, tmp_path: Path) -> None:
    receiver = Receiver()
    try:
        with Client(apis.deployment.url, apis.deployment.api_key) as client:
            receiver.secret = client.webhooks.create_secret().secret
            endpoint = client.webhooks.register(receiver.url + "/ok")
            assert endpoint.secret is None  # the tenant had a secret already: not shown again
            job = _submit(client, notify_url=receiver.url + "/flaky").wait()
            deadline = time.monotonic() + 60
            while {d.state for d in job.deliveries().items} != {"delivered"}:
                assert time.monotonic() < deadline, job.deliveries()
                time.sleep(0.2)
            deliveries = {d.url: d for d in job.deliveries().items}
    finally:
        receiver.server.shutdown()
    flaky, ok = deliveries[receiver.url + "/flaky"], deliveries[receiver.url + "/ok"]
    assert [(a.attempt, a.status_code, a.succeeded) for a in flaky.attempts] == [(1, 500, False), (2, 500, False),
                                                                                  (3, 200, True)]
    assert [(a.status_code, a.succeeded) for a in ok.attempts] == [(200, True)]
    assert all(r["verified"] for r in receiver.received) and len(receiver.received) == 4
    final = receiver.received[-1]["event"]
    assert final["event"] == "job.succeeded" and final["job_id"] == job.id and final["model_id"] == job.model_id
    assert {r["delivery"] for r in receiver.received} == {flaky.id, ok.id}
    # a wrong secret, or a replayed (old) timestamp, does not verify
    body = json.dumps(final).encode()
    assert not verify_webhook("whsec_wrong", body, {"X-LipSpline-Timestamp": "1", "X-LipSpline-Signature": "v1=0"})


def test_private_targets_are_refused_without_the_setting(apis: TwoApis) -> None:
    from lipspline_platform.webhooks.targets import RefusedTargetError, check_target

    for url in ("http://127.0.0.1:9/x", "http://169.254.169.254/latest", "http://10.0.0.1/", "ftp://example.com/"):
        with pytest.raises(RefusedTargetError):
            check_target(url, allow_private=False)
