"""Webhook deliveries against receivers that fight back (issue 26), with real sockets on loopback.

Every receiver is a real TCP listener on a thread; the sender is the real dispatcher code,
recording into a real (SQLite) outbox. Loopback receivers are reachable because these
tests set ``webhook_allow_private`` (as the e2e webhook test does with
``LIPSPLINE_WEBHOOK_ALLOW_PRIVATE=1``), except where the point is the refusal.

- A receiver that drips one byte a second never finishes an attempt, but the attempt ends by
  its deadline anyway: while the status line is dripping, and while an error body is.
- A receiver answering 500 with a 200 MiB body costs at most 1 KiB of it, not 200 MiB of memory.
- DNS rebinding: the only fake here is the resolver (``socket.getaddrinfo`` answering one
  address, then another), as no rebinding DNS server can run in a test. The request goes to
  the first, checked, address and never to a listener on the second.
- https: the connection goes to the checked address, and SNI and the certificate check use
  the URL's host name (a certificate made for another name is refused).
- A fork (the certificate step's ``run_with_deadline``, and a bare ``os.fork``) does not wait
  for a delivery in flight, and a slow receiver holds up only its own delivery.
- One tenant's many slow receivers take at most its share of the sender threads: another
  tenant's delivery is still sent at once.
"""

from __future__ import annotations

import datetime as dt
import operator
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from lipspline.certificates._isolated import run_with_deadline
from lipspline_platform.db.engine import dispose_all, session_scope
from lipspline_platform.db.ids import new_id
from lipspline_platform.db.migrate import upgrade
from lipspline_platform.db.tables import (
    DEFAULT_TENANT,
    DatasetRow,
    JobRow,
    TenantRow,
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookSecretRow,
)
from lipspline_platform.settings import Settings
from lipspline_platform.webhooks import outbox
from lipspline_platform.webhooks.dispatcher import WebhookDispatcher, attempt, deliver_due
from lipspline_platform.webhooks.secret_store import seal
from lipspline_platform.webhooks.signing import new_secret
from lipspline_platform.webhooks.targets import NOT_PUBLIC, check_target

DEADLINE_S = 2.0
#: what a loaded 2-core machine may add to a deadline (thread wake-ups, SQLite commits)
SLACK_S = 1.0
REAL_GETADDRINFO = socket.getaddrinfo
OK_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


# ---- receivers -------------------------------------------------------------------------------


class RawReceiver:
    """A TCP listener on loopback; each connection's request is read, then ``respond`` answers it.

    Counts connections and the bytes the answers managed to send, and notes when the client
    went away (a send failed or the peer closed).
    """

    def __init__(self, respond: Callable[[RawReceiver, socket.socket], None], host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.respond = respond
        self.listener = socket.create_server((host, port))
        self.listener.settimeout(0.1)
        self.host, self.port = host, self.listener.getsockname()[1]
        self.connections = 0
        self.requests: list[bytes] = []
        self.sent = 0
        self.request_read = threading.Event()
        self.client_gone_at: float | None = None
        self.stopping = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + body)
                self.request_read.set()
                self.respond(self, conn)
            except OSError:
                self.client_gone_at = time.monotonic()

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.sent += len(data)

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()
        for thread in self._threads:
            thread.join(5)


def answer_ok(receiver: RawReceiver, conn: socket.socket) -> None:
    receiver.send(conn, OK_ANSWER)


def dripping(head: bytes = b"", interval_s: float = 1.0) -> Callable[[RawReceiver, socket.socket], None]:
    """Sends ``head`` at once, then one byte every ``interval_s``, never finishing (until the client leaves)."""

    def respond(receiver: RawReceiver, conn: socket.socket) -> None:
        if head:
            receiver.send(conn, head)
        for byte in b"HTTP/1.1 200 OK\r\nX-Drip: " if not head else b"":
            receiver.send(conn, bytes([byte]))
            if receiver.stopping.wait(interval_s):
                return
        while not receiver.stopping.wait(interval_s):
            receiver.send(conn, b"a")

    return respond


def huge_error_body(total: int) -> Callable[[RawReceiver, socket.socket], None]:
    """A 500 whose ``total``-byte body is made as it is sent (64 KiB at a time, one buffer)."""
    block = b"E" * 65536

    def respond(receiver: RawReceiver, conn: socket.socket) -> None:
        receiver.send(conn, b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
                            b"Content-Length: %d\r\n\r\n" % total)
        left = total
        while left > 0 and not receiver.stopping.is_set():
            receiver.send(conn, block[: min(left, len(block))])
            left -= len(block)

    return respond


@pytest.fixture
def receivers() -> Iterator[Callable[..., RawReceiver]]:
    made: list[RawReceiver] = []

    def make(respond: Callable[[RawReceiver, socket.socket], None], **kwargs: Any) -> RawReceiver:
        made.append(RawReceiver(respond, **kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


class RebindingResolver:
    """``socket.getaddrinfo`` for one name: ``first`` on the first lookup, ``then`` on every later one.

    What a DNS-rebinding server does with a zero TTL. Other names are resolved for real; the
    answers are real ``getaddrinfo`` results for the chosen address literals.
    """

    def __init__(self, name: str, first: str, then: str) -> None:
        self.name, self.first, self.then = name, first, then
        self.lookups = 0

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host != self.name:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        self.lookups += 1
        return REAL_GETADDRINFO(self.first if self.lookups == 1 else self.then, port, *args, **kwargs)


# ---- an outbox on SQLite ------------------------------------------------------------------------


@pytest.fixture
def make_settings(tmp_path: Path) -> Iterator[Callable[..., Settings]]:
    """Settings on a migrated SQLite database with a dataset and a webhook secret for the default tenant."""
    migrated: set[str] = set()

    def make(**overrides: Any) -> Settings:
        values = {"webhook_allow_private": True, "webhook_timeout_s": DEADLINE_S, "webhook_poll_s": 0,
                  "reconcile_every_s": 0, "webhook_backoff_s": 60.0, **overrides}
        settings = Settings(data_dir=tmp_path, **values)
        if settings.resolved_database_url not in migrated:
            migrated.add(settings.resolved_database_url)
            upgrade(settings.resolved_database_url)
            with session_scope(settings.resolved_database_url) as session:
                session.add(DatasetRow(id="d1", tenant_id=DEFAULT_TENANT, name="d", task="classification",
                                       n_samples=1, n_features=1, feature_names=["x"], source_format="json",
                                       sha256="0" * 64, content=b""))
                session.add(WebhookSecretRow(tenant_id=DEFAULT_TENANT,
                                             secret=seal(settings, DEFAULT_TENANT, new_secret())))
        return settings

    yield make
    dispose_all()


def add_tenant(settings: Settings, name: str) -> str:
    """Another tenant, with its own webhook secret; returns its id."""
    tenant_id = new_id()
    with session_scope(settings.resolved_database_url) as session:
        session.add(TenantRow(id=tenant_id, name=name))
        session.flush()
        session.add(WebhookSecretRow(tenant_id=tenant_id, secret=seal(settings, tenant_id, new_secret())))
    return tenant_id


def enqueue(settings: Settings, url: str, tenant_id: str = DEFAULT_TENANT) -> str:
    """A finished job whose final event is due to ``url`` now; returns the delivery's id."""
    job_id = new_id()
    now = dt.datetime.now(dt.UTC)
    with session_scope(settings.resolved_database_url) as session:
        session.add(JobRow(id=job_id, tenant_id=tenant_id, dataset_id="d1", config={}, status="succeeded",
                           queue="cpu", cancel_requested=False, progress={}, attempts=1, worker_host="w@h",
                           created_at=now, updated_at=now))
        session.flush()
        outbox.enqueue(session, tenant_id=tenant_id, job_id=job_id, notify_url=url, event="job.succeeded",
                       payload={"event": "job.succeeded", "job_id": job_id})
    with session_scope(settings.resolved_database_url) as session:
        return session.scalars(select(WebhookDeliveryRow.id).where(WebhookDeliveryRow.job_id == job_id)).one()


def attempts_of(settings: Settings, delivery_id: str) -> list[WebhookAttemptRow]:
    with session_scope(settings.resolved_database_url) as session:
        rows = session.scalars(select(WebhookAttemptRow).where(WebhookAttemptRow.delivery_id == delivery_id)
                               .order_by(WebhookAttemptRow.attempt)).all()
        session.expunge_all()
        return list(rows)


def state_of(settings: Settings, delivery_id: str) -> str:
    with session_scope(settings.resolved_database_url) as session:
        return session.get(WebhookDeliveryRow, delivery_id).state


def _taken(settings: Settings, delivery_id: str) -> outbox.DueDelivery:
    """The delivery, taken as a dispatcher takes it (so that :func:`attempt` can be called alone)."""
    (due,) = [d for d in outbox.take_due(settings, dt.datetime.now(dt.UTC)) if d.id == delivery_id]
    return due


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def timed_pass(settings: Settings) -> float:
    began = time.monotonic()
    assert deliver_due(settings) == 1
    return time.monotonic() - began


# ---- the deadline ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["status line", "error body"])
def test_an_attempt_against_a_dripping_receiver_ends_by_its_deadline(
    where: str, make_settings: Callable[..., Settings], receivers: Callable[..., RawReceiver]
) -> None:
    settings = make_settings()
    head = b"" if where == "status line" else b"HTTP/1.1 500 Oops\r\nContent-Length: 100000\r\n\r\n"
    receiver = receivers(dripping(head))
    delivery = enqueue(settings, receiver.url)

    elapsed = timed_pass(settings)

    print(f"\nattempt against a receiver dripping its {where}: {elapsed:.2f} s (deadline {DEADLINE_S:g} s)")
    assert elapsed < DEADLINE_S + SLACK_S
    (recorded,) = attempts_of(settings, delivery)
    assert recorded.duration_s < DEADLINE_S + SLACK_S
    # the lease it was taken under outlasts it: no other dispatcher could have sent it meanwhile
    assert recorded.duration_s + 5.0 <= settings.webhook_lease
    if where == "status line":
        assert recorded.status_code is None and "deadline" in recorded.error, recorded.error
    else:  # the status came before the deadline: recorded, with what of the body came in time
        assert recorded.status_code == 500 and recorded.error.startswith("HTTP 500: a"), recorded.error
    assert receiver.connections == 1 and state_of(settings, delivery) == "pending"  # retried later, once
    deadline = time.monotonic() + 5  # the connection was closed, not left open: the receiver's sends fail
    while receiver.client_gone_at is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert receiver.client_gone_at is not None


# ---- bounded reads -----------------------------------------------------------------------------


def test_a_huge_error_body_costs_one_kibibyte_not_its_size(
    make_settings: Callable[..., Settings], receivers: Callable[..., RawReceiver]
) -> None:
    settings = make_settings(webhook_timeout_s=10.0)
    total = 200 * 1024 * 1024
    warm_up = receivers(huge_error_body(1024 * 1024))  # imports, the SSL context, SQLite pages: not measured
    enqueue(settings, warm_up.url)
    timed_pass(settings)

    receiver = receivers(huge_error_body(total))
    delivery = enqueue(settings, receiver.url)
    before = rss_bytes()
    elapsed = timed_pass(settings)
    grown = rss_bytes() - before

    print(f"\n500 with a {total >> 20} MiB body: RSS grew {grown / 2**20:.2f} MiB, the receiver got "
          f"{receiver.sent / 2**20:.2f} MiB out before the connection was closed, {elapsed:.2f} s")
    assert grown < 10 * 2**20
    (recorded,) = attempts_of(settings, delivery)
    assert recorded.status_code == 500 and recorded.error == "HTTP 500: " + "E" * 200
    assert elapsed < 5.0
    # the rest was never asked for: the connection was closed, so the receiver could not send it all
    deadline = time.monotonic() + 5
    while receiver.client_gone_at is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert receiver.client_gone_at is not None and receiver.sent < total // 4


def test_a_success_answer_is_not_read_at_all(
    make_settings: Callable[..., Settings], receivers: Callable[..., RawReceiver]
) -> None:
    settings = make_settings()
    huge_ok = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n"
    receiver = receivers(dripping(huge_ok, interval_s=0.05))
    delivery = enqueue(settings, receiver.url)
    assert timed_pass(settings) < 1.0 + SLACK_S
    assert [(a.status_code, a.succeeded) for a in attempts_of(settings, delivery)] == [(200, True)]
    assert state_of(settings, delivery) == "delivered"


# ---- pinning: the request goes where the check looked ------------------------------------------


def _listener_pair(receivers: Callable[..., RawReceiver]) -> tuple[RawReceiver, RawReceiver]:
    """An answering receiver on 127.0.0.2 and a trap on 127.0.0.1, on the same port."""
    for _ in range(20):
        good = receivers(answer_ok, host="127.0.0.2")
        try:
            return good, receivers(answer_ok, host="127.0.0.1", port=good.port)
        except OSError:  # that port is taken on 127.0.0.1: another one
            continue
    raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")


def test_dns_rebinding_cannot_move_the_request_to_another_address(
    make_settings: Callable[..., Settings], receivers: Callable[..., RawReceiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    good, trap = _listener_pair(receivers)
    name = "hooks.rebinding.test"
    resolver = RebindingResolver(name, first="127.0.0.2", then="127.0.0.1")
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    settings = make_settings()
    delivery = enqueue(settings, f"http://{name}:{good.port}/hook?x=1")

    timed_pass(settings)

    assert resolver.lookups == 1  # resolved once, by the check
    assert trap.connections == 0
    assert good.connections == 1 and state_of(settings, delivery) == "delivered"
    request = good.requests[0]
    assert request.startswith(b"POST /hook?x=1 HTTP/1.1\r\n")
    assert f"\r\nHost: {name}:{good.port}\r\n".encode() in request  # the name, not the address


def test_dns_rebinding_to_loopback_is_refused_or_pinned_to_the_public_address(
    make_settings: Callable[..., Settings], receivers: Callable[..., RawReceiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    trap = receivers(answer_ok, host="127.0.0.1")
    name = "hooks.rebinding.test"
    url = f"http://{name}:{trap.port}/hook"
    settings = make_settings(webhook_allow_private=False, webhook_timeout_s=1.0)

    # the check at registration sees a public address; at send time the name answers loopback: refused
    resolver = RebindingResolver(name, first="192.88.99.1", then="127.0.0.1")
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    check_target(url, allow_private=False)
    refused = enqueue(settings, url)
    timed_pass(settings)
    (recorded,) = attempts_of(settings, refused)
    assert recorded.error == f"RefusedTargetError: {NOT_PUBLIC}"  # and nothing about 127.0.0.1

    # the send-time check sees the public address, a second lookup would see loopback: the
    # connection goes to the public address (unreachable here, or not listening), never to the trap
    monkeypatch.setattr(socket, "getaddrinfo", RebindingResolver(name, first="192.88.99.1", then="127.0.0.1"))
    pinned = enqueue(settings, url)
    timed_pass(settings)
    (recorded,) = attempts_of(settings, pinned)
    assert recorded.status_code is None and "127.0.0.1" not in recorded.error, recorded.error
    assert trap.connections == 0


def _certificates(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A CA (its PEM) and a server certificate for ``name`` signed by it (certificate + key PEM)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def make(subject: str, key: Any, issuer: Any, issuer_key: Any, ca: bool) -> Any:
        now = dt.datetime.now(dt.UTC)
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(issuer or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(hours=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            usage = x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                  key_encipherment=False, data_encipherment=False, key_agreement=False,
                                  encipher_only=False, decipher_only=False)
            builder = builder.add_extension(usage, critical=True)
            builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        else:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
            )
        return builder.sign(issuer_key or key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = make("LipSpline test CA", ca_key, None, None, ca=True)
    server = make(name, server_key, ca.subject, ca_key, ca=False)
    ca_pem, server_pem = tmp_path / "ca.pem", tmp_path / "server.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_pem.write_bytes(server.public_bytes(serialization.Encoding.PEM) + server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ca_pem, server_pem


def test_https_connects_to_the_checked_address_with_sni_and_certificate_of_the_name(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "hooks.tls.test"
    ca_pem, server_pem = _certificates(tmp_path, name)
    seen: dict[str, Any] = {"sni": [], "hosts": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            seen["hosts"].append(self.headers["Host"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            return None  # a client that refused the certificate: expected below

    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(server_pem)
    server_context.sni_callback = lambda _sock, sni, _ctx: seen["sni"].append(sni)
    server = Server(("127.0.0.1", 0), Handler)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    client_context = ssl.create_default_context(cafile=str(ca_pem))
    # both names lead to 127.0.0.1 (a resolver of our own: no DNS here); the certificate is for the first
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *args, **kwargs: REAL_GETADDRINFO(
        "127.0.0.1" if host in (name, "other.tls.test") else host, port, *args, **kwargs))
    settings = make_settings()
    try:
        good = attempt(settings, _taken(settings, enqueue(settings, f"https://{name}:{port}/hook")),
                       ssl_context=client_context)
        wrong = attempt(settings, _taken(settings, enqueue(settings, f"https://other.tls.test:{port}/hook")),
                        ssl_context=client_context)
    finally:
        server.shutdown()
        server.server_close()
    assert good.status_code == 204 and good.error is None, good.error
    assert seen["sni"][0] == name and seen["hosts"] == [f"{name}:{port}"]
    assert good.duration_s < DEADLINE_S
    assert wrong.status_code is None and "CERTIFICATE_VERIFY_FAILED" in wrong.error, wrong.error
    assert seen["sni"][1:] == ["other.tls.test"] and len(seen["hosts"]) == 1


# ---- no lock shared with training --------------------------------------------------------------


def test_a_fork_does_not_wait_for_a_delivery_in_flight(
    make_settings: Callable[..., Settings], receivers: Callable[..., RawReceiver]
) -> None:
    settings = make_settings(webhook_timeout_s=4.0)
    receiver = receivers(dripping())
    delivery = enqueue(settings, receiver.url)
    dispatcher = WebhookDispatcher(settings)  # what the dispatcher thread of a worker's main process runs
    try:
        assert dispatcher.dispatch_once() == 1
        assert receiver.request_read.wait(5)  # the request is out; the answer drips: the attempt is in flight
        time.sleep(0.3)

        began = time.monotonic()
        assert run_with_deadline(operator.pow, 2, 10, time_limit_s=10) == 1024  # the certificate step's fork
        certificate_fork_s = time.monotonic() - began
        began = time.monotonic()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os._exit(0)
        os.waitpid(pid, 0)
        bare_fork_s = time.monotonic() - began
        in_flight = not attempts_of(settings, delivery)
    finally:
        dispatcher.stop()

    print(f"\nwith a delivery in flight: run_with_deadline {certificate_fork_s * 1000:.0f} ms, "
          f"os.fork {bare_fork_s * 1000:.0f} ms")
    assert in_flight  # the forks happened while the receiver still held the attempt
    assert certificate_fork_s < 1.0 and bare_fork_s < 1.0
    assert len(attempts_of(settings, delivery)) == 1  # and the attempt then ended, by its deadline


def test_a_slow_receiver_delays_only_its_own_delivery(
    make_settings: Callable[..., Settings], receivers: Callable[..., RawReceiver]
) -> None:
    settings = make_settings(webhook_timeout_s=4.0, webhook_concurrency=2)
    slow, fast = receivers(dripping()), receivers(answer_ok)
    slow_delivery = enqueue(settings, slow.url)
    fast_delivery = enqueue(settings, fast.url)
    dispatcher = WebhookDispatcher(settings)
    began = time.monotonic()
    try:
        assert dispatcher.dispatch_once() == 2
        while state_of(settings, fast_delivery) != "delivered":
            assert time.monotonic() - began < 2.0, "the fast receiver waited for the slow one"
            time.sleep(0.05)
        fast_done_s = time.monotonic() - began
        assert state_of(settings, slow_delivery) == "pending" and not attempts_of(settings, slow_delivery)
        # both threads are busy: the slow one until its deadline; nothing more is taken meanwhile
        assert dispatcher.dispatch_once() == 0
    finally:
        dispatcher.stop()
    print(f"\nfast receiver delivered after {fast_done_s:.2f} s while the slow one dripped")
    (slow_attempt,) = attempts_of(settings, slow_delivery)
    assert "deadline" in slow_attempt.error


def test_a_tenants_slow_receivers_hold_only_its_share_of_the_senders(
    make_settings: Callable[..., Settings], receivers: Callable[..., RawReceiver]
) -> None:
    settings = make_settings(webhook_timeout_s=4.0, webhook_concurrency=3, webhook_concurrency_per_tenant=2)
    other = add_tenant(settings, "other")
    dripping_receivers = [receivers(dripping()) for _ in range(4)]
    for receiver in dripping_receivers:  # older than the other tenant's: first in line
        enqueue(settings, receiver.url)
    fast_receiver = receivers(answer_ok)
    fast = enqueue(settings, fast_receiver.url, tenant_id=other)
    dispatcher = WebhookDispatcher(settings)
    began = time.monotonic()
    try:
        assert dispatcher.dispatch_once() == 3  # two of the dripping tenant's, the other tenant's one
        while state_of(settings, fast) != "delivered":
            assert time.monotonic() - began < 2.0, "the other tenant's delivery waited for the slow receivers"
            time.sleep(0.05)
        fast_done_s = time.monotonic() - began
        # the third sender is free again, but the dripping tenant already holds its share of two
        assert dispatcher.dispatch_once() == 0
        reached = sum(receiver.connections for receiver in dripping_receivers)
    finally:
        dispatcher.stop()
    print(f"\nthe other tenant's delivery went out after {fast_done_s:.2f} s beside 4 dripping receivers")
    assert fast_receiver.connections == 1 and reached == 2


def test_a_delivery_in_flight_is_not_taken_by_another_dispatcher(
    make_settings: Callable[..., Settings], receivers: Callable[..., RawReceiver]
) -> None:
    settings = make_settings()
    receiver = receivers(dripping())
    delivery = enqueue(settings, receiver.url)
    first, second = WebhookDispatcher(settings), WebhookDispatcher(settings)
    try:
        assert first.dispatch_once() == 1
        taken_by_second = 0
        while not attempts_of(settings, delivery):  # until the first dispatcher recorded its attempt
            taken_by_second += second.dispatch_once()
            time.sleep(0.1)
    finally:
        first.stop()
        second.stop()
    assert taken_by_second == 0 and receiver.connections == 1
    assert [a.attempt for a in attempts_of(settings, delivery)] == [1]
