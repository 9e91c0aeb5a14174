"""Which addresses may receive webhooks (issue 26): every way of writing a private IPv4 address
inside an IPv6 one is refused, the refusal says nothing about what a name resolved to, and a
delivery's lease always outlasts its attempt.

No servers and no DNS: the URLs below hold address literals, which ``getaddrinfo`` answers
without asking any name server (decimal and hexadecimal IPv4 forms included).
"""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import ValidationError

from lipspline_platform.settings import WEBHOOK_LEASE_MARGIN_S, Settings
from lipspline_platform.webhooks.targets import NOT_PUBLIC, RefusedTargetError, check_target, embedded_ipv4, is_public

PRIVATE_V4 = ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
              "255.255.255.255", "224.0.0.1", "240.0.0.1", "192.0.2.1", "198.18.0.1"]


def _embeddings(v4: str) -> list[str]:
    """Every IPv6 form that leads to ``v4``: mapped, compatible, translated, NAT64 (both prefixes), 6to4."""
    n = int(ipaddress.IPv4Address(v4))
    hi, lo = n >> 16, n & 0xFFFF
    return [f"::ffff:{v4}", f"::{v4}", f"::ffff:0:{v4}", f"64:ff9b::{v4}", f"64:ff9b::{hi:x}:{lo:x}",
            f"64:ff9b:1::{hi:x}:{lo:x}", f"2002:{hi:x}:{lo:x}::1", f"2002:{hi:x}:{lo:x}:1::abcd"]


@pytest.mark.parametrize("v4", PRIVATE_V4)
def test_every_ipv6_embedding_of_a_private_ipv4_address_is_refused(v4: str) -> None:
    assert not is_public(ipaddress.IPv4Address(v4))
    for v6 in _embeddings(v4):
        address = ipaddress.IPv6Address(v6)
        assert not is_public(address), v6
        with pytest.raises(RefusedTargetError, match=f"^{NOT_PUBLIC}$"):
            check_target(f"http://[{v6}]:8080/hook", allow_private=False)


@pytest.mark.parametrize("v6", [
    "::1", "::", "fe80::1", "fe80::1%1", "fc00::1", "fd12:3456::1", "fec0::1", "ff02::1", "ff0e::1",
    "2001:db8::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo, whatever its embedded client
    "2001:0:4136:e378:8000:63bf:f7f7:f7f7", "100::1", "4000::1", "64:ff9b:1::808:808", "::ffff:0:0",
])
def test_non_global_ipv6_is_refused(v6: str) -> None:
    assert not is_public(ipaddress.IPv6Address(v6))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001::1",
                                     "64:ff9b::808:808", "::ffff:8.8.8.8", "2002:808:808::1"])
def test_public_addresses_and_embeddings_of_public_ipv4_pass(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert is_public(ip)
    literal = f"[{address}]" if ip.version == 6 else address
    target = check_target(f"https://{literal}/hook", allow_private=False)
    assert [ipaddress.ip_address(a.ip) for a in target.addresses] == [ip]
    assert all(a.sockaddr[1] == 443 for a in target.addresses)


def test_embedded_ipv4_reads_each_form() -> None:
    for v6 in _embeddings("10.1.2.3")[:-3] + _embeddings("10.1.2.3")[-2:]:
        assert embedded_ipv4(ipaddress.IPv6Address(v6)) == ipaddress.IPv4Address("10.1.2.3"), v6
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700::1")) is None


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/x", "http://169.254.169.254/latest", "http://10.0.0.1/", "http://2130706433/",
    "http://0x7f.1/", "http://[::ffff:127.0.0.1]/", "http://[::127.0.0.1]/",
    "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::]/", "http://localhost:8000/", "http://name.invalid/",
])
def test_refusals_say_nothing_about_what_the_host_resolved_to(url: str) -> None:
    with pytest.raises(RefusedTargetError) as refused:
        check_target(url, allow_private=False)
    assert str(refused.value) == NOT_PUBLIC == "the host must resolve to public addresses only"


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://example.com/", "only http and https"),
    ("http://user:pw@8.8.8.8/", "credentials"),
    ("http:///nohost", "no host"),
    ("http://[::1/", "cannot be parsed"),
    ("http://0177.0.0.1/", "cannot be parsed"),  # httpx refuses octal IPv4; the resolver would read 127.0.0.1
])
def test_urls_that_are_not_http_targets_are_refused_before_any_lookup(url: str, message: str) -> None:
    with pytest.raises(RefusedTargetError, match=message):
        check_target(url, allow_private=True)


def test_allowing_private_targets_still_pins_what_was_resolved() -> None:
    target = check_target("http://127.0.0.1:8080/hook?x=1", allow_private=True)
    assert [(a.ip, a.sockaddr[1]) for a in target.addresses] == [("127.0.0.1", 8080)]
    assert target.url.raw_path == b"/hook?x=1" and target.url.netloc == b"127.0.0.1:8080"


def test_a_delivery_lease_always_outlasts_its_attempt() -> None:
    assert Settings().webhook_lease >= Settings().webhook_timeout_s + WEBHOOK_LEASE_MARGIN_S
    assert Settings(webhook_timeout_s=100).webhook_lease == 130  # the default follows the deadline
    assert Settings(webhook_timeout_s=10, webhook_lease_s=15).webhook_lease == 15
    with pytest.raises(ValidationError, match="webhook_lease_s"):
        Settings(webhook_timeout_s=10, webhook_lease_s=12)
    with pytest.raises(ValidationError, match="webhook_lease_s"):
        Settings(webhook_timeout_s=60, webhook_lease_s=40)  # the 40 s lease against an 80 s attempt
