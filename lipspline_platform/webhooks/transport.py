"""One webhook POST to a checked target: to the addresses checked, within one deadline, reading little.

Why not ``httpx.Client.post`` (issue 26), three reasons:

* its timeouts are per operation: a receiver that sends one byte every 4 s never trips a 10 s
  read timeout, and an attempt ran 80 s. Here every socket operation (connect, TLS handshake,
  each send, each recv) gets only the time left before the attempt's deadline, so the whole
  attempt ends by it, however the receiver paces its bytes;
* ``response.text`` reads the whole body: a 768 MiB error page took a worker to 2.5 GiB. Here
  a 2xx answer's body is not read at all, and an error's body is read up to ``keep_bytes``
  (1 KiB), after which the connection is closed (httpcore closes a connection whose response
  was not read to its end, it does not drain it): memory stays at one 64 KiB read;
* httpx resolves the host again to connect, so a name that answered a public address to the
  check could answer 127.0.0.1 to the connect (DNS rebinding). Here the connection goes to the
  :class:`~lipspline_platform.webhooks.targets.Target`'s checked addresses, whatever httpcore
  asks for, while the request still names the host: ``Host`` is the URL's, and for https the
  SNI and the certificate check use the URL's host name (httpcore takes both from the URL).

httpcore is the engine under httpx; only its public API is used (a network backend and the
stream it returns). One pool per attempt, one connection, no retries, no redirects (a receiver
must not bounce the request to a refused address), HTTP/1.1 only.

Closing shuts the socket down before closing it: a process forked while the attempt was in
flight (a Celery pool child, a certificate's solver child) holds a copy of the descriptor, and
``close`` alone would leave the connection open for as long as that copy lives.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import ssl
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from lipspline_platform.webhooks.targets import Address, Target

#: the most bytes of an error answer's body that are read (and kept)
KEEP_BYTES = 1024
DEADLINE_PASSED = "the attempt's deadline passed"


@dataclass(frozen=True)
class Answer:
    """What the receiver answered: its status and, for an error, the first bytes of its body."""

    status: int
    body_head: bytes = b""
    #: why the body was cut short before ``keep_bytes`` (the deadline, a broken connection), if it was
    body_error: str | None = None


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    """httpx's context (certifi's roots, hostname checks), made once per process: loading the roots costs."""
    return httpx.create_ssl_context()


@contextlib.contextmanager
def _mapped(timeout_error: type[Exception], other_error: type[Exception]) -> Iterator[None]:
    try:
        yield
    except TimeoutError as exc:  # socket.timeout
        raise timeout_error(str(exc) or DEADLINE_PASSED) from exc
    except OSError as exc:  # ssl.SSLError included
        raise other_error(str(exc)) from exc


class _DeadlineStream(httpcore.NetworkStream):
    """A socket whose every operation may wait only until ``deadline`` (``time.monotonic()``).

    httpcore's per-operation ``timeout`` arguments are ignored: the deadline is the only limit.
    """

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock, self._deadline = sock, deadline

    def _left(self, timeout_error: type[Exception]) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise timeout_error(DEADLINE_PASSED)
        return left

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _mapped(httpcore.ReadTimeout, httpcore.ReadError):
            self._sock.settimeout(self._left(httpcore.ReadTimeout))
            return self._sock.recv(max_bytes)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        view = memoryview(buffer)
        with _mapped(httpcore.WriteTimeout, httpcore.WriteError):
            while view:
                self._sock.settimeout(self._left(httpcore.WriteTimeout))
                view = view[self._sock.send(view) :]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        try:
            with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
                self._sock.settimeout(self._left(httpcore.ConnectTimeout))  # bounds the whole handshake
                tls = ssl_context.wrap_socket(self._sock, server_hostname=server_hostname)
        except BaseException:
            self.close()
            raise
        return _DeadlineStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object" and isinstance(self._sock, ssl.SSLSocket):
            return self._sock  # httpcore asks it for the ALPN protocol only
        if info == "socket":
            return self._sock
        if info == "client_addr":
            return self._sock.getsockname()
        if info == "server_addr":
            return self._sock.getpeername()
        return None


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to the target's checked addresses, in order, never to what ``host`` resolves to now."""

    def __init__(self, addresses: tuple[Address, ...], deadline: float) -> None:
        self._addresses, self._deadline = addresses, deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        failure = "no address to connect to"
        for index, address in enumerate(self._addresses):
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ConnectTimeout(DEADLINE_PASSED)
            # each remaining address gets its share of the time left: one that drops packets
            # must not take the whole attempt from the next (an unreachable IPv6 route, say)
            share = left / (len(self._addresses) - index)
            sock = socket.socket(address.family, socket.SOCK_STREAM)
            try:
                sock.settimeout(share)
                sock.connect(address.sockaddr)  # an address, not a name: nothing is resolved here
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError as exc:
                sock.close()
                failure = str(exc) or type(exc).__name__
                continue
            return _DeadlineStream(sock, self._deadline)
        if self._deadline <= time.monotonic():
            raise httpcore.ConnectTimeout(DEADLINE_PASSED)
        raise httpcore.ConnectError(failure)

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        raise httpcore.UnsupportedProtocol("webhooks are sent over TCP only")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def post(
    target: Target,
    body: bytes,
    headers: Mapping[str, str],
    *,
    deadline: float,
    keep_bytes: int = KEEP_BYTES,
    ssl_context: ssl.SSLContext | None = None,
) -> Answer:
    """POST ``body`` to ``target`` before ``deadline`` (a ``time.monotonic()`` instant).

    Raises httpcore's ``TimeoutException`` (the deadline passed before the status line and
    headers came), ``NetworkError`` or ``ProtocolError``; once the status is known it returns.
    """
    url = httpcore.URL(scheme=target.url.raw_scheme, host=target.url.raw_host, port=target.url.port,
                       target=target.url.raw_path)
    request_headers = [(b"Host", target.url.netloc)]  # the name, as the URL gives it (brackets and port included)
    request_headers += [(name.encode("ascii"), value.encode("ascii")) for name, value in headers.items()]
    pool = httpcore.ConnectionPool(
        ssl_context=ssl_context or default_ssl_context(),
        max_connections=1,
        http1=True,
        http2=False,
        retries=0,
        network_backend=_PinnedBackend(target.addresses, deadline),
    )
    with pool, pool.stream("POST", url, headers=request_headers, content=body) as response:
        if 200 <= response.status < 300:
            return Answer(response.status)  # the body is not wanted: closed unread
        head = bytearray()
        try:
            for chunk in response.iter_stream():
                head += chunk[: keep_bytes - len(head)]
                if len(head) >= keep_bytes:
                    break  # the rest is never read: closing the response closes the connection
        except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as exc:
            return Answer(response.status, bytes(head), f"{type(exc).__name__}: {exc}")
        return Answer(response.status, bytes(head))
