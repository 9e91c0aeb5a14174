"""Which URLs may receive webhooks: ``http(s)`` only, and not the service's own network.

A webhook makes the service send a request wherever a tenant says. Left open, that lets a
tenant reach what only the service can reach (a metadata endpoint on 169.254.169.254, the
database host, localhost admin ports): server-side request forgery. So every address the
host name resolves to must be a public one, unless ``LIPSPLINE_WEBHOOK_ALLOW_PRIVATE=1``
(tests, and deployments whose receivers live on a private network). The check runs when
the URL is given (a clear 422) and again before each attempt (DNS may have changed).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class RefusedTargetError(ValueError):
    """The URL may not receive webhooks; the message says why."""


def check_target(url: str, *, allow_private: bool) -> None:
    """Raise :class:`RefusedTargetError` unless ``url`` is an http(s) URL whose host is allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RefusedTargetError(f"only http and https URLs can receive webhooks, not {parts.scheme or 'no scheme'!r}")
    if not parts.hostname:
        raise RefusedTargetError("the URL has no host")
    if parts.username or parts.password:
        raise RefusedTargetError("credentials in the URL are not allowed")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError) as exc:
        raise RefusedTargetError(f"host {parts.hostname!r} cannot be resolved ({exc})") from None
    if allow_private:
        return
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global or address.is_multicast:
            raise RefusedTargetError(
                f"host {parts.hostname!r} resolves to {address}, a private, loopback or link-local address "
                "(set LIPSPLINE_WEBHOOK_ALLOW_PRIVATE=1 to allow it)"
            )
