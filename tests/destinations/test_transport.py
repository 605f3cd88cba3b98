"""SSRF rules for destination URLs, checked without sending anything anywhere."""

from __future__ import annotations

import pytest

from whoopadmin.destinations import transport
from whoopadmin.destinations.transport import DestinationRefused, check, refusal


def no_lookup(host, port):
    raise AssertionError(f"no lookup expected for {host}")


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.5.6.7",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "224.0.0.1",
    ],
)
def test_private_loopback_link_local_and_metadata_addresses_are_refused(address):
    assert refusal(address) is not None


def test_with_private_allowed_only_non_host_addresses_are_refused():
    assert refusal("127.0.0.1", allow_private=True) is None
    assert refusal("10.0.0.1", allow_private=True) is None
    assert refusal("0.0.0.0", allow_private=True) is not None
    assert refusal("not-an-ip") is not None


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.0.0.8:8443/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]:9000/hook",
        "https://[::ffff:7f00:1]/hook",
        "https://localhost/hook",
        "https://api.localhost:8080/hook",
        "https://LOCALHOST./hook",
    ],
)
def test_literal_and_loopback_name_urls_are_refused_without_a_lookup(url):
    with pytest.raises(DestinationRefused):
        check(url, allow_private=False, resolver=transport.resolve)


def test_localhost_is_refused_before_any_lookup():
    with pytest.raises(DestinationRefused, match="loopback name"):
        check("https://localhost:8443/x", resolver=no_lookup)


def test_every_resolved_address_is_checked(network_guard):
    answers = {"mixed.example.test": ["9.9.9.9", "127.0.0.1"]}
    with pytest.raises(DestinationRefused, match="loopback"):
        check("https://mixed.example.test/hook", resolver=lambda h, p: answers[h])
    assert network_guard == []  # a check resolves and classifies; it connects nowhere


def test_a_name_with_only_a_private_address_is_refused():
    with pytest.raises(DestinationRefused, match="private"):
        check("https://intranet.example.test/hook", resolver=lambda h, p: ["10.9.8.7"])


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "Enter"),
        ("ftp://example.test/x", "https://"),
        ("javascript:alert(1)", "https://"),
        ("http://example.test/x", "https://"),  # plain http only in development
        ("https://user:pass@example.test/x", "user name"),
        ("https://example.test/x#frag", "fragment"),
        ("https:///x", "no host"),
        ("https://example.test:99999/x", "not a valid URL"),
        ("https://example.test:0/x", "port"),
        ("https://exa mple.test/x", "spaces"),
        ("https://example.test/" + "a" * 2100, "longer"),
    ],
)
def test_malformed_urls_are_refused_with_a_reason(url, reason):
    with pytest.raises(DestinationRefused, match=reason):
        check(url, resolver=no_lookup)


def test_an_allowed_target_keeps_the_checked_addresses_and_host_header():
    target = check(
        "http://receiver.example.test:8080/in?x=1",
        allow_private=True,
        resolver=lambda h, p: ["127.0.0.1"],
    )
    assert target.addresses == ("127.0.0.1",)
    assert target.host_header == "receiver.example.test:8080"
    assert target.path == "/in?x=1"
    assert check("https://[::1]/", allow_private=True).host_header == "[::1]"


def test_an_unresolvable_name_is_refused(network_guard):
    with pytest.raises(DestinationRefused, match="does not resolve"):
        check("https://nothing.invalid/x", allow_private=True)
