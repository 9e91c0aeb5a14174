"""Which URLs may receive webhooks: ``http(s)`` only, and not the service's own network.

A webhook makes the service send a request wherever a tenant says. Left open, that lets a
tenant reach what only the service can reach (a metadata endpoint on 169.254.169.254, the
database host, localhost admin ports): server-side request forgery. So every address the
host name resolves to must be a public one, unless ``LIPSPLINE_WEBHOOK_ALLOW_PRIVATE=1``
(tests, and deployments whose receivers live on a private network). The check runs when
the URL is given (a clear 422) and again before each attempt (DNS may have changed).

Three rules close the ways around the check (issue 26):

* **Resolve once, connect to what was checked.** :func:`check_target` returns the addresses
  it judged, and the sender connects to those (``transport.py``), never to a second answer
  of the resolver: otherwise a name that answers a public address to the check and
  127.0.0.1 to the connect (DNS rebinding) reaches the loopback.
* **Judge the IPv4 address inside an IPv6 one.** ``::ffff:127.0.0.1`` (mapped),
  ``::127.0.0.1`` (compatible), ``64:ff9b::7f00:1`` (NAT64) and ``2002:7f00:1::`` (6to4) all
  lead to an IPv4 host; each is judged by that host. IPv6 must otherwise be global unicast
  (``2000::/3``), and Teredo (``2001::/32``, a tunnel to any IPv4 host) is refused outright.
* **Say nothing about what the name resolved to.** The refusal is one sentence whatever the
  reason (unresolvable, loopback, private, link-local...): echoing "resolves to 10.1.2.3"
  would turn the 422 into a probe of the internal DNS. The details go to the service's log.

The URL is parsed once, by ``httpx.URL``, and the sender uses that parsed URL: the check and
the request cannot disagree about which host an odd URL names.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)

#: the refusal for every address-related reason, so it reveals nothing about internal names
NOT_PUBLIC = "the host must resolve to public addresses only"
#: with private targets allowed, the one address-related refusal left (nothing to hide then)
UNRESOLVED = "the host cannot be resolved"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_TEREDO = ipaddress.IPv6Network("2001::/32")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix: the IPv4 address is the last 32 bits
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215 local-use: where the IPv4 address sits varies
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d (also :: and ::1)
_V4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # SIIT ::ffff:0:a.b.c.d


class RefusedTargetError(ValueError):
    """The URL may not receive webhooks; the message says why (never what the host resolved to)."""


@dataclass(frozen=True)
class Address:
    """One checked address of a target, as the resolver gave it (``sockaddr`` includes the port)."""

    family: socket.AddressFamily
    sockaddr: tuple[Any, ...]

    @property
    def ip(self) -> str:
        return str(self.sockaddr[0])


@dataclass(frozen=True)
class Target:
    """A URL allowed to receive webhooks, and the addresses the sender must connect to (in order)."""

    url: httpx.URL
    addresses: tuple[Address, ...]


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 host an IPv6 address leads to (mapped, compatible, translated, NAT64, 6to4), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in net for net in (_V4_COMPATIBLE, _V4_TRANSLATED, _NAT64)):
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def _public_v4(address: ipaddress.IPv4Address) -> bool:
    return address.is_global and not (
        address.is_private or address.is_loopback or address.is_link_local or address.is_multicast
        or address.is_reserved or address.is_unspecified
    )


def is_public(address: IPAddress) -> bool:
    """True for an address on the public internet, judged by the IPv4 host an IPv6 address embeds."""
    if isinstance(address, ipaddress.IPv4Address):
        return _public_v4(address)
    if address.scope_id or address in _TEREDO or address in _NAT64_LOCAL:
        return False
    inner = embedded_ipv4(address)
    if inner is not None:
        return _public_v4(inner)
    return address in _GLOBAL_UNICAST_V6 and address.is_global and not (
        address.is_private or address.is_multicast or address.is_link_local or address.is_site_local
        or address.is_reserved or address.is_loopback or address.is_unspecified
    )


def resolve(host: str, port: int, timeout_s: float) -> list[tuple[socket.AddressFamily, tuple[Any, ...]]]:
    """``getaddrinfo`` bounded by ``timeout_s``: a slow DNS server must not stretch an attempt.

    The lookup runs on a daemon thread; past the limit it is abandoned (it ends on its own when
    the system resolver gives up) and the caller gets ``TimeoutError``.
    """
    answer: list[Any] = []
    failure: list[BaseException] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            answer.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, name="lipspline-webhook-dns", daemon=True).start()
    if not done.wait(max(timeout_s, 0.0)):
        raise TimeoutError(f"name resolution took longer than {timeout_s:g} s")
    if failure:
        raise failure[0]
    seen: dict[tuple[Any, ...], socket.AddressFamily] = {}
    for family, _type, _proto, _name, sockaddr in answer:
        if family in (socket.AF_INET, socket.AF_INET6):
            seen.setdefault(tuple(sockaddr), family)
    return [(family, sockaddr) for sockaddr, family in seen.items()]


def check_target(url: str, *, allow_private: bool, timeout_s: float = 10.0) -> Target:
    """The :class:`Target` to send to, or :class:`RefusedTargetError` unless ``url`` may receive webhooks."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise RefusedTargetError("the URL cannot be parsed") from None
    if parsed.scheme not in ("http", "https"):
        raise RefusedTargetError(f"only http and https URLs can receive webhooks, not {parsed.scheme or 'no scheme'!r}")
    if not parsed.host:
        raise RefusedTargetError("the URL has no host")
    if parsed.userinfo:
        raise RefusedTargetError("credentials in the URL are not allowed")
    host = parsed.raw_host.decode("ascii")  # IDNA-encoded; an IPv6 literal without brackets
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        found = resolve(host, port, timeout_s)
    except (OSError, UnicodeError, ValueError) as exc:  # TimeoutError is an OSError
        log.info("webhook target %r refused: %s cannot be resolved (%s)", url, host, exc)
        raise RefusedTargetError(UNRESOLVED if allow_private else NOT_PUBLIC) from None
    if not found:
        raise RefusedTargetError(UNRESOLVED if allow_private else NOT_PUBLIC)
    addresses = tuple(Address(family, sockaddr) for family, sockaddr in found)
    if not allow_private:
        for address in addresses:
            try:
                ip = ipaddress.ip_address(address.ip)  # keeps a scope ("fe80::1%eth0"): refused
            except ValueError:
                ip = None
            if ip is None or not is_public(ip):
                log.info("webhook target %r refused: %s resolves to %s, not a public address", url, host, ip)
                raise RefusedTargetError(NOT_PUBLIC)
    return Target(parsed, addresses)
