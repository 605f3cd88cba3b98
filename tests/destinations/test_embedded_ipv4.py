"""Every IPv6 form that carries an IPv4 address is judged by that IPv4 address.

Each form is tried as a literal URL and as the AAAA answer of a real DNS server on
loopback: loopback, private and cloud-metadata addresses are refused, public ones pass.
"""

from __future__ import annotations

import ipaddress

import dns.nameserver
import dns.resolver
import pytest

from tests.helpers import zone
from whoopadmin.destinations import transport
from whoopadmin.destinations.transport import DestinationRefused, check, embedded_ipv4

TEREDO_SERVER = "65.54.227.120"


def teredo(client: str, server: str = TEREDO_SERVER) -> str:
    """The Teredo address of ``client`` behind ``server`` (RFC 4380: client bits inverted)."""
    value = (
        (0x20010000 << 96)
        | (int(ipaddress.IPv4Address(server)) << 64)
        | (0x8000 << 48)  # flags
        | ((~40000 & 0xFFFF) << 32)  # the obfuscated port
        | (~int(ipaddress.IPv4Address(client)) & 0xFFFFFFFF)
    )
    return str(ipaddress.IPv6Address(value))


def sixtofour(v4: str) -> str:
    return str(ipaddress.IPv6Address((0x2002 << 112) | (int(ipaddress.IPv4Address(v4)) << 80) | 1))


def forms(v4: str) -> dict[str, str]:
    """Every IPv6 spelling of the IPv4 address ``v4``."""
    return {
        "mapped": f"::ffff:{v4}",
        "compatible": f"::{v4}",
        "translated": f"::ffff:0:{v4}",
        "nat64": f"64:ff9b::{v4}",
        "nat64-local": f"64:ff9b:1::{v4}",
        "6to4": sixtofour(v4),
        "teredo": teredo(v4),
    }


UNFIT = {
    "127.0.0.1": "loopback",
    "127.9.9.9": "loopback",
    "10.0.0.5": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "169.254.169.254": "link-local",  # cloud metadata
    "100.64.0.1": "not a public address",  # carrier-grade NAT
    "0.0.0.0": "not the address of a host",
}
PUBLIC = ["8.8.8.8", "93.184.216.34"]
# A local-use NAT64 prefix (RFC 8215) may be /48 to /96; RFC 6052 puts the IPv4 address
# in a different place for each, so each place must hold a public address. This one has
# 8.8.8.8 in all four.
LOCAL_NAT64_PUBLIC = "64:ff9b:1:808:8:808:808:808"
# 8.8.8.8 where a /96 prefix puts it, 10.0.0.8 where a /64 prefix does (they share a byte).
LOCAL_NAT64_HIDDEN = str(
    ipaddress.IPv6Address((0x0064FF9B0001 << 80) | (0x0A000008 << 24) | 0x08080808)
)


def unfit_cases():
    for v4, kind in UNFIT.items():
        for form, address in forms(v4).items():
            if ipaddress.ip_address(address).is_unspecified:
                continue  # ::0.0.0.0 is just ::, no address at all (refused as such)
            yield pytest.param(address, v4, kind, id=f"{form}-{v4}")


def public_cases():
    for v4 in PUBLIC:
        for form, address in forms(v4).items():
            if form != "nat64-local":
                yield pytest.param(address, id=f"{form}-{v4}")
    yield pytest.param(LOCAL_NAT64_PUBLIC, id="nat64-local-everywhere-8.8.8.8")


def literal(address: str) -> str:
    return f"https://[{address}]:8443/hook"


@pytest.mark.parametrize(("address", "v4", "kind"), list(unfit_cases()))
def test_each_form_of_an_unfit_address_is_refused_as_a_literal_url(address, v4, kind):
    assert ipaddress.IPv4Address(v4) in embedded_ipv4(ipaddress.ip_address(address))
    with pytest.raises(DestinationRefused) as refused:
        check(literal(address), resolver=transport.resolve)
    message = str(refused.value)
    assert f"stands for the IPv4 address {v4}" in message and kind in message
    assert "resolves" not in message  # a literal address is not "resolved"


@pytest.mark.parametrize("address", list(public_cases()))
def test_each_form_of_a_public_address_is_allowed(address):
    target = check(literal(address), resolver=transport.resolve)
    assert [ipaddress.ip_address(a) for a in target.addresses] == [ipaddress.ip_address(address)]


def test_the_issues_examples_are_refused():
    for url in ("https://[::127.0.0.1]/", "https://[::ffff:0:7f00:1]/"):
        with pytest.raises(DestinationRefused, match="127.0.0.1, a loopback address"):
            check(url, resolver=transport.resolve)


def test_a_local_nat64_address_hides_nothing_in_another_place():
    inner = embedded_ipv4(ipaddress.ip_address(LOCAL_NAT64_HIDDEN))
    assert inner[0] == ipaddress.IPv4Address("8.8.8.8")  # where a /96 prefix puts it
    with pytest.raises(DestinationRefused, match="10.0.0.8, a private address"):
        check(literal(LOCAL_NAT64_HIDDEN), resolver=transport.resolve)


def test_teredo_is_judged_by_its_client_address():
    """The client is stored bit-inverted; a public server does not make it public."""
    address = teredo("10.0.0.5")
    assert str(ipaddress.ip_address(address)).endswith("f5ff:fffa")  # ~10.0.0.5
    with pytest.raises(DestinationRefused, match="10.0.0.5"):
        check(literal(address), resolver=transport.resolve)
    with pytest.raises(DestinationRefused, match="169.254.169.254"):
        check(literal(teredo("8.8.8.8", server="169.254.169.254")), resolver=transport.resolve)


def test_plain_ipv6_addresses_keep_their_own_judgement():
    assert embedded_ipv4(ipaddress.ip_address("::1")) == []
    assert embedded_ipv4(ipaddress.ip_address("2606:4700:4700::1111")) == []
    for address, kind in (("::1", "loopback"), ("fe80::1", "link-local"), ("fd00::1", "private")):
        with pytest.raises(DestinationRefused, match=f"{address} is a {kind}"):
            check(literal(address), resolver=transport.resolve)
    assert check(literal("2606:4700:4700::1111"), resolver=transport.resolve)


def test_with_private_destinations_allowed_every_form_passes():
    for address in forms("127.0.0.1").values():
        assert check(literal(address), allow_private=True, resolver=transport.resolve)


# ------------------------------------------------------------------ as DNS answers


def loopback_resolver(server):
    """Resolve A and AAAA at the loopback DNS server, as the system resolver would."""

    def resolve(host: str, port: int) -> list[str]:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver("127.0.0.1", server.port)]
        resolver.lifetime = 3.0
        found = []
        for rdtype in ("A", "AAAA"):
            answer = resolver.resolve(host, rdtype, raise_on_no_answer=False)
            found += [rd.address for rd in answer.rrset or ()]
        return found

    return resolve


def names(addresses: list[str]) -> dict[str, str]:
    """A label for each address: h0, h1, …"""
    return {f"h{i}": address for i, address in enumerate(addresses)}


def serve(server, records: dict[str, str]) -> None:
    body = "".join(f"{label} AAAA {address}\n" for label, address in records.items())
    server.load_zone(zone("acme.test", body + "both A 8.8.8.8\n"), origin="acme.test")


def test_each_form_of_an_unfit_address_is_refused_as_a_dns_answer(dns):
    cases = [(address, v4, kind) for (address, v4, kind) in (p.values for p in unfit_cases())]
    records = names([address for address, _, _ in cases])
    serve(dns, records)
    resolve = loopback_resolver(dns)
    for (label, address), (_, v4, kind) in zip(records.items(), cases, strict=True):
        with pytest.raises(DestinationRefused) as refused:
            check(f"https://{label}.acme.test/hook", resolver=resolve)
        message = str(refused.value)
        # DNS may print the address its own way (::7f00:1 for ::127.0.0.1).
        shown = str(ipaddress.ip_address(address))
        assert message.startswith(f"{label}.acme.test resolves to {shown}, which stands for")
        assert f"the IPv4 address {v4}" in message and kind in message, message


def test_each_form_of_a_public_address_is_allowed_as_a_dns_answer(dns):
    addresses = [p.values[0] for p in public_cases()]
    records = names(addresses)
    serve(dns, records)
    resolve = loopback_resolver(dns)
    for label, address in records.items():
        target = check(f"https://{label}.acme.test/hook", resolver=resolve)
        assert [ipaddress.ip_address(a) for a in target.addresses] == [
            ipaddress.ip_address(address)
        ]


def test_one_unfit_answer_among_public_ones_refuses_the_name(dns):
    dns.load_zone(
        zone("acme.test", "mixed A 8.8.8.8\nmixed AAAA 64:ff9b::a9fe:a9fe\n"), origin="acme.test"
    )
    with pytest.raises(DestinationRefused, match="169.254.169.254, a link-local address"):
        check("https://mixed.acme.test/hook", resolver=loopback_resolver(dns))
