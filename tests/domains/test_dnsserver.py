"""The loopback authoritative DNS server answers like a real one (queried with dnspython)."""

from __future__ import annotations

import socket

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.domains.support import zone
from whoopadmin.domains import DNSServer

BODY = """
www A 192.0.2.1
alias CNAME www
chain CNAME alias
outside CNAME lb.example.net.
dangling CNAME gone
*.wild A 192.0.2.9
explicit.wild TXT "mine"
a.b.c TXT "deep"
big TXT "{chunk}" "{chunk}" "{chunk}"
big TXT "{chunk}" "{chunk}" "x"
""".format(chunk="x" * 200)


@pytest.fixture
def server():
    with DNSServer({"acme.test": zone("acme.test", BODY)}) as running:
        yield running


def ask(server, name, rdtype="A", *, tcp=False, edns=True):
    query = dns.message.make_query(name, rdtype, use_edns=0 if edns else False)
    if tcp:
        return dns.query.tcp(query, server.host, port=server.port, timeout=1)
    return dns.query.udp(query, server.host, port=server.port, timeout=1)


def texts(response):
    return [
        (r.name.to_text(), dns.rdatatype.to_text(r.rdtype), r[0].to_text()) for r in response.answer
    ]


def test_authoritative_answer_over_udp_and_tcp(server):
    for tcp in (False, True):
        response = ask(server, "www.acme.test", tcp=tcp)
        assert response.rcode() == dns.rcode.NOERROR
        assert response.flags & dns.flags.AA
        assert texts(response) == [("www.acme.test.", "A", "192.0.2.1")]
    assert ("www.acme.test", "A") in server.queries


def test_nxdomain_and_nodata_carry_the_soa(server):
    missing = ask(server, "nope.acme.test")
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert missing.flags & dns.flags.AA
    (soa,) = missing.authority
    assert soa.rdtype == dns.rdatatype.SOA and soa[0].minimum == 120
    nodata = ask(server, "www.acme.test", "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA


def test_empty_non_terminal_is_nodata(server):
    response = ask(server, "b.c.acme.test", "TXT")
    assert response.rcode() == dns.rcode.NOERROR and not response.answer


def test_cnames_are_chased_inside_the_zone_only(server):
    assert texts(ask(server, "chain.acme.test")) == [
        ("chain.acme.test.", "CNAME", "alias.acme.test."),
        ("alias.acme.test.", "CNAME", "www.acme.test."),
        ("www.acme.test.", "A", "192.0.2.1"),
    ]
    assert texts(ask(server, "outside.acme.test")) == [
        ("outside.acme.test.", "CNAME", "lb.example.net.")
    ]
    # Asking for the CNAME itself does not chase.
    assert len(ask(server, "chain.acme.test", "CNAME").answer) == 1
    dangling = ask(server, "dangling.acme.test")
    assert dangling.rcode() == dns.rcode.NXDOMAIN  # RFC 6604: about the last name
    assert texts(dangling) == [("dangling.acme.test.", "CNAME", "gone.acme.test.")]


def test_wildcards_are_synthesised_but_explicit_names_win(server):
    assert texts(ask(server, "anything.wild.acme.test")) == [
        ("anything.wild.acme.test.", "A", "192.0.2.9")
    ]
    explicit = ask(server, "explicit.wild.acme.test")
    assert explicit.rcode() == dns.rcode.NOERROR and not explicit.answer
    assert ask(server, "x.y.wild.acme.test").answer  # below a non-existent name too


def test_names_outside_the_zones_are_refused(server):
    response = ask(server, "example.org")
    assert response.rcode() == dns.rcode.REFUSED
    assert not response.flags & dns.flags.AA


def test_udp_truncates_and_tcp_carries_the_whole_answer(server):
    truncated = ask(server, "big.acme.test", "TXT", edns=False)
    assert truncated.flags & dns.flags.TC and not truncated.answer
    query = dns.message.make_query("big.acme.test", "TXT")
    response, used_tcp = dns.query.udp_with_fallback(
        query, server.host, port=server.port, timeout=1
    )
    assert used_tcp and len(response.answer[0]) == 2


def test_zones_can_be_replaced_and_removed_while_running(server):
    server.load_zone(zone("acme.test", "www A 192.0.2.77\n"))
    assert texts(ask(server, "www.acme.test"))[0][2] == "192.0.2.77"
    server.load_zone(zone("other.test"))
    assert server.zones == ["acme.test", "other.test"]
    server.remove_zone("acme.test")
    assert ask(server, "www.acme.test").rcode() == dns.rcode.REFUSED


def test_the_most_specific_zone_answers(server):
    server.load_zone(zone("sub.acme.test", "www A 192.0.2.55\n"))
    assert texts(ask(server, "www.sub.acme.test"))[0][2] == "192.0.2.55"
    assert ask(server, "sub.acme.test", "SOA").answer[0].name.to_text() == "sub.acme.test."


def test_faults(server):
    server.set_fault("servfail", "www.acme.test")
    assert ask(server, "www.acme.test").rcode() == dns.rcode.SERVFAIL
    assert ask(server, "alias.acme.test", "CNAME").rcode() == dns.rcode.NOERROR
    server.set_fault("refused", "www.acme.test", rdtypes=["AAAA"])
    assert ask(server, "www.acme.test", "AAAA").rcode() == dns.rcode.REFUSED
    assert ask(server, "www.acme.test").rcode() == dns.rcode.NOERROR
    server.set_fault("drop", "www.acme.test")
    query = dns.message.make_query("www.acme.test", "A")
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(query, server.host, port=server.port, timeout=0.2)
    with pytest.raises(dns.exception.Timeout):
        dns.query.tcp(query, server.host, port=server.port, timeout=0.2)
    server.set_fault("garbage", "www.acme.test")
    with pytest.raises(dns.exception.DNSException):
        dns.query.udp(query, server.host, port=server.port, timeout=0.5)
    server.set_fault("drop")  # every name
    with pytest.raises(dns.exception.Timeout):
        ask_quick = dns.message.make_query("alias.acme.test", "A")
        dns.query.udp(ask_quick, server.host, port=server.port, timeout=0.2)
    server.clear_faults()
    assert ask(server, "www.acme.test").rcode() == dns.rcode.NOERROR
    with pytest.raises(ValueError):
        server.set_fault("explode", "www.acme.test")


def test_lenient_zone_serves_a_cname_beside_other_data():
    text = zone("acme.test", "both CNAME www\nboth A 192.0.2.3\nwww A 192.0.2.1\n")
    with pytest.raises(dns.exception.DNSException):
        DNSServer({"acme.test": text})
    with DNSServer({"acme.test": text}, lenient=True) as server:
        assert texts(ask(server, "both.acme.test")) == [("both.acme.test.", "A", "192.0.2.3")]
        assert texts(ask(server, "both.acme.test", "CNAME"))[0][2] == "www.acme.test."


def test_zones_given_as_texts_with_origin_and_bad_text():
    with DNSServer([zone("one.test"), zone("two.test")]) as server:
        assert server.zones == ["one.test", "two.test"]
    with pytest.raises(dns.exception.DNSException):
        DNSServer({"bad.test": "$ORIGIN bad.test.\nwww A not-an-address\n"})


def test_stop_releases_the_port_and_is_idempotent():
    server = DNSServer({"acme.test": zone("acme.test", BODY)}).start()
    port = server.port
    server.stop()
    server.stop()
    with pytest.raises(RuntimeError):
        server.port  # noqa: B018
    # Both sockets are closed: the port can be bound again at once.
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))


def test_stop_while_a_tcp_client_waits_for_a_dropped_query():
    server = DNSServer({"acme.test": zone("acme.test", BODY)}).start()
    server.set_fault("drop")
    with socket.create_connection(server.address, timeout=2) as conn:
        wire = dns.message.make_query("www.acme.test", "A").to_wire()
        conn.sendall(len(wire).to_bytes(2, "big") + wire)
        server.stop()  # must not hang on the handler blocked in recv()
        assert conn.recv(2) == b""


def test_two_servers_on_one_port_at_different_loopback_addresses():
    with DNSServer({"acme.test": zone("acme.test", "www A 192.0.2.1\n")}, host="127.0.0.2") as a:
        text = zone("acme.test", "www A 192.0.2.2\n")
        with DNSServer({"acme.test": text}, host="127.0.0.3", port=a.port) as b:
            assert texts(ask(a, "www.acme.test"))[0][2] == "192.0.2.1"
            assert texts(ask(b, "www.acme.test"))[0][2] == "192.0.2.2"


def test_the_loopback_guard_stops_packets_leaving_the_machine():
    # tests/domains/conftest.py fails any socket use beyond 127.0.0.0/8 in these tests.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(RuntimeError):
        sock.sendto(b"\0" * 12, ("192.0.2.1", 53))
