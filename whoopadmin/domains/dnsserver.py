"""A small authoritative DNS server (UDP + TCP) on dnspython, for loopback tests and the demo.

It answers the way a real authoritative server does, which is what the checks in
:mod:`whoopadmin.domains.checks` rely on:

- the AA flag on every answer from a zone it serves, REFUSED for names outside them;
- the zone's SOA in the authority section of NXDOMAIN and NODATA answers (negative TTL);
- CNAMEs chased inside the same zone only (a target in another zone is left to the
  resolver), wildcards synthesised per RFC 4592, empty non-terminals answered NODATA;
- truncation (TC) over UDP when an answer does not fit, so clients retry over TCP.

Faults can be switched on per name (SERVFAIL, REFUSED, dropped queries that make clients
time out, garbage bytes), zones can be replaced while the server runs, and two servers
with different contents stand in for nameservers that disagree.

    with DNSServer({"acme.test": zone_text("acme.test", "whoop CNAME edge.example.")}) as server:
        check_domain(..., nameservers=[server.address])
"""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import struct
import threading
from collections import deque
from collections.abc import Iterable, Mapping

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.node
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
import dns.zonefile

__all__ = ["DNSServer", "LenientZone", "zone_text"]

# How long a TCP connection may sit idle before the server closes it; it also bounds how
# long stop() can wait for a handler that is holding a "dropped" query.
_TCP_IDLE_TIMEOUT = 5.0
_MAX_CNAME_CHAIN = 16


def zone_text(
    origin: str,
    body: str = "",
    *,
    negative_ttl: int = 60,
    soa_ttl: int = 3600,
    nameservers: Mapping[str, str] | None = None,
) -> str:
    """Zone-file text for *origin*: an SOA, NS records with addresses, then *body*.

    The SOA's negative-caching TTL is min(*soa_ttl*, *negative_ttl*) (RFC 2308);
    *nameservers* maps NS labels to IPv4 addresses (default ``ns1`` at 127.0.0.1). *body*
    holds ordinary zone-file lines, relative to *origin*.
    """
    origin = origin.rstrip(".")
    nameservers = nameservers or {"ns1": "127.0.0.1"}
    first = next(iter(nameservers))
    lines = [
        f"$ORIGIN {origin}.",
        "$TTL 300",
        f"@ {soa_ttl} IN SOA {first}.{origin}. hostmaster.{origin}. 1 7200 900 1209600 "
        f"{negative_ttl}",
    ]
    for label, address in nameservers.items():
        lines += [f"@ NS {label}.{origin}.", f"{label} A {address}"]
    return "\n".join(lines) + "\n" + body + "\n"


class _LenientNode(dns.node.Node):
    """A node that keeps a CNAME beside other data instead of letting the last one win.

    Real zones must not do this (RFC 1034 §3.6.2), but some DNS providers serve it anyway,
    and the checker has to recognise it, so tests need a server that can serve it.
    """

    def _append_rdataset(self, rdataset) -> None:
        self.rdatasets.append(rdataset)


class _LenientTransaction(dns.zone.Transaction):
    """A zone transaction that skips the zone reader's "CNAME and other data" refusal."""

    def check_put_rdataset(self, check) -> None:
        if check is dns.zonefile._check_cname_and_other_data:
            return
        super().check_put_rdataset(check)


class LenientZone(dns.zone.Zone):
    """A zone whose nodes may hold a CNAME and other data together (see ``_LenientNode``)."""

    node_factory = _LenientNode

    def writer(self, replacement: bool = False) -> dns.zone.Transaction:
        txn = _LenientTransaction(self, replacement)
        txn._setup_version()
        return txn


def _parse_zone(text: str, origin: str | None, lenient: bool) -> dns.zone.Zone:
    """Parse zone-file text into an absolute-name zone (``$ORIGIN`` or *origin* gives the apex)."""
    return dns.zone.from_text(
        text,
        origin=origin,
        relativize=False,
        check_origin=True,
        allow_include=False,
        zone_factory=LenientZone if lenient else dns.zone.Zone,
    )


class _Fault:
    """What to do instead of answering: SERVFAIL, REFUSED, drop, or garbage bytes."""

    KINDS = ("servfail", "refused", "drop", "garbage")

    def __init__(self, kind: str, rdtypes: frozenset[int] | None) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown fault {kind!r}; use one of {', '.join(self.KINDS)}")
        self.kind = kind
        self.rdtypes = rdtypes

    def applies_to(self, rdtype: int) -> bool:
        return self.rdtypes is None or rdtype in self.rdtypes


class DNSServer:
    """An authoritative DNS server on loopback serving zones given as zone-file text.

    *zones* is a mapping of origin -> zone text, or an iterable of zone texts that each
    carry an ``$ORIGIN``. ``lenient=True`` lets a name hold a CNAME and other data.
    Bound to 127.0.0.1 and a free port by default; UDP and TCP share the port.
    """

    def __init__(
        self,
        zones: Mapping[str, str] | Iterable[str] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        lenient: bool = False,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._lock = threading.Lock()
        self._zones: dict[dns.name.Name, dns.zone.Zone] = {}
        self._faults: dict[dns.name.Name | None, _Fault] = {}
        self._udp: socketserver.UDPServer | None = None
        self._tcp: socketserver.TCPServer | None = None
        self._threads: list[threading.Thread] = []
        self._tcp_connections: set[socket.socket] = set()
        #: The latest queries received, as (name, type) text pairs — lets tests prove
        #: which server was asked what (and that nothing was cached on the way).
        self.queries: deque[tuple[str, str]] = deque(maxlen=10_000)
        items = zones.items() if isinstance(zones, Mapping) else ((None, t) for t in zones)
        for origin, text in items:
            self.load_zone(text, origin=origin, lenient=lenient)

    # ----------------------------------------------------------------- zones

    def load_zone(self, text: str, *, origin: str | None = None, lenient: bool = False) -> None:
        """Add a zone, or replace the zone with the same origin, while the server runs."""
        zone = _parse_zone(text, origin, lenient)
        with self._lock:
            self._zones[zone.origin] = zone

    def remove_zone(self, origin: str) -> None:
        """Stop serving a zone (its names are then REFUSED, like an unconfigured server)."""
        with self._lock:
            self._zones.pop(dns.name.from_text(origin), None)

    @property
    def zones(self) -> list[str]:
        """The origins served, without the trailing dot."""
        with self._lock:
            return sorted(z.to_text(omit_final_dot=True) for z in self._zones)

    # ---------------------------------------------------------------- faults

    def set_fault(
        self,
        kind: str,
        name: str | None = None,
        rdtypes: Iterable[str] | None = None,
    ) -> None:
        """Answer queries for *name* (every name if None) with a fault instead of data.

        *kind* is ``servfail``, ``refused``, ``drop`` (no reply at all, so the client times
        out) or ``garbage`` (bytes that are not a DNS message); *rdtypes* limits it to some
        query types.
        """
        key = None if name is None else dns.name.from_text(name)
        types = None if rdtypes is None else frozenset(dns.rdatatype.from_text(t) for t in rdtypes)
        with self._lock:
            self._faults[key] = _Fault(kind, types)

    def clear_faults(self) -> None:
        """Answer every query normally again."""
        with self._lock:
            self._faults.clear()

    # ------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        """The port UDP and TCP listen on (known once started)."""
        if self._udp is None:
            raise RuntimeError("the DNS server is not running")
        return self._udp.server_address[1]

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``, the form the checks take in their ``nameservers`` list."""
        return (self.host, self.port)

    def start(self) -> DNSServer:
        """Bind UDP and TCP to the same port and serve each from its own thread."""
        if self._udp is not None:
            return self
        server = self
        # Port 0 picks a free UDP port, which may be taken for TCP: try a few times.
        last_error: OSError | None = None
        for _ in range(20):
            udp = _UDPServer((self.host, self._requested_port), server)
            try:
                tcp = _TCPServer((self.host, udp.server_address[1]), server)
            except OSError as exc:
                udp.server_close()
                last_error = exc
                if self._requested_port:
                    raise
                continue
            break
        else:
            raise OSError(f"could not bind UDP and TCP to one port: {last_error}")
        self._udp, self._tcp = udp, tcp
        for srv, label in ((udp, "udp"), (tcp, "tcp")):
            thread = threading.Thread(
                target=srv.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"dnsserver-{label}-{udp.server_address[1]}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving, close every socket and join every thread."""
        udp, tcp = self._udp, self._tcp
        if udp is None or tcp is None:
            return
        udp.shutdown()
        tcp.shutdown()
        # A handler holding a dropped TCP query is blocked in recv(): wake it up.
        with self._lock:
            connections = list(self._tcp_connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        udp.server_close()
        tcp.server_close()
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        self._udp = self._tcp = None

    def __enter__(self) -> DNSServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -------------------------------------------------------------- answering

    def handle_wire(self, wire: bytes, *, max_size: int | None) -> bytes | None:
        """Answer one query in wire format; None means send nothing (dropped or unparseable)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            # Not even a header we can echo: stay silent, as many servers do.
            return None
        if query.flags & dns.flags.QR:
            return None  # a response sent to us: never answer one (no reflection loops)
        if query.opcode() != dns.opcode.QUERY or not query.question:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.NOTIMP if query.question else dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        with self._lock:
            self.queries.append((qname.to_text(omit_final_dot=True), dns.rdatatype.to_text(qtype)))
            fault = self._faults.get(qname) or self._faults.get(None)
            zones = dict(self._zones)
        if fault is not None and fault.applies_to(qtype):
            if fault.kind == "drop":
                return None
            if fault.kind == "garbage":
                # Right ID so the client reads it, then nonsense it cannot parse.
                return wire[:2] + os.urandom(7)
        response = dns.message.make_response(query)
        if fault is not None and fault.applies_to(qtype):
            response.set_rcode(
                dns.rcode.SERVFAIL if fault.kind == "servfail" else dns.rcode.REFUSED
            )
        else:
            self._answer(response, qname, qtype, question.rdclass, zones)
        limit = max_size
        if limit is not None and query.edns >= 0:
            limit = max(512, min(query.payload, 65535))
        try:
            return response.to_wire(max_size=limit or 65535)
        except dns.exception.TooBig:
            # Doesn't fit in UDP: send the header and question with TC so the client
            # retries over TCP, as RFC 1035 §4.2.1 and RFC 7766 describe.
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.TC
            truncated.flags |= response.flags & dns.flags.AA
            return truncated.to_wire()

    def _answer(self, response, qname, qtype, rdclass, zones) -> None:
        """Fill *response* for *qname*/*qtype* from the zone that holds it."""
        zone = _zone_for(qname, zones)
        if zone is None or rdclass != dns.rdataclass.IN:
            response.set_rcode(dns.rcode.REFUSED)
            return
        response.flags |= dns.flags.AA
        name = qname
        seen: set[dns.name.Name] = set()
        while True:
            node = _lookup(zone, name)
            if node is None:
                # After a CNAME too: RFC 6604 says the rcode describes the last name.
                response.set_rcode(dns.rcode.NXDOMAIN)
                _add_soa(response, zone)
                return
            wanted = [
                rds for rds in node.rdatasets if qtype == dns.rdatatype.ANY or rds.rdtype == qtype
            ]
            if wanted:
                for rds in wanted:
                    response.answer.append(_rrset(name, rds))
                return
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is None:
                _add_soa(response, zone)  # NODATA
                return
            response.answer.append(_rrset(name, cname))
            seen.add(name)
            target = cname[0].target
            if (
                target in seen
                or len(seen) >= _MAX_CNAME_CHAIN
                or _zone_for(target, zones) is not zone
            ):
                # Out-of-zone (or looping) target: stop and let the resolver go on.
                return
            name = target


def _zone_for(name: dns.name.Name, zones: Mapping[dns.name.Name, dns.zone.Zone]):
    """The most specific zone served that contains *name*, or None."""
    candidate = name
    while True:
        zone = zones.get(candidate)
        if zone is not None:
            return zone
        if candidate == dns.name.root:
            return None
        candidate = candidate.parent()


def _lookup(zone: dns.zone.Zone, name: dns.name.Name):
    """Find the node answering for *name*: itself, an empty non-terminal, or a wildcard.

    Returns None when the name does not exist (NXDOMAIN). An empty non-terminal is
    returned as an empty node, so it answers NODATA.
    """
    node = zone.get_node(name)
    if node is not None:
        return node
    names = list(zone.nodes.keys())
    if any(other.is_subdomain(name) for other in names):
        return dns.node.Node()  # empty non-terminal
    # RFC 4592: find the closest encloser, then a wildcard directly below it.
    encloser = name.parent()
    while encloser.is_subdomain(zone.origin):
        if zone.get_node(encloser) is not None or any(o.is_subdomain(encloser) for o in names):
            return zone.get_node(dns.name.Name((b"*",) + encloser.labels))
        if encloser == zone.origin:
            break
        encloser = encloser.parent()
    return None


def _rrset(owner: dns.name.Name, rdataset) -> dns.rrset.RRset:
    """An RRset for the answer section, owned by *owner* (which synthesises wildcards)."""
    rrset = dns.rrset.RRset(owner, rdataset.rdclass, rdataset.rdtype, rdataset.covers)
    rrset.update(rdataset)
    return rrset


def _add_soa(response: dns.message.Message, zone: dns.zone.Zone) -> None:
    """Put the zone's SOA in the authority section, as RFC 2308 asks of negative answers."""
    soa = zone.get_rdataset(zone.origin, dns.rdatatype.SOA)
    if soa is not None:
        response.authority.append(_rrset(zone.origin, soa))


class _UDPHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        reply = self.server.dns.handle_wire(data, max_size=512)  # type: ignore[attr-defined]
        if reply is not None:
            with contextlib.suppress(OSError):
                sock.sendto(reply, self.client_address)


class _TCPHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        conn: socket.socket = self.request
        dns_server: DNSServer = self.server.dns  # type: ignore[attr-defined]
        conn.settimeout(_TCP_IDLE_TIMEOUT)
        with dns_server._lock:
            dns_server._tcp_connections.add(conn)
        try:
            # RFC 7766: a connection may carry several length-prefixed queries.
            while True:
                header = _recv_exactly(conn, 2)
                if header is None:
                    return
                (length,) = struct.unpack("!H", header)
                wire = _recv_exactly(conn, length)
                if wire is None:
                    return
                reply = dns_server.handle_wire(wire, max_size=None)
                if reply is None:
                    continue  # dropped: the client waits until it times out
                conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            return
        finally:
            with dns_server._lock:
                dns_server._tcp_connections.discard(conn)


def _recv_exactly(conn: socket.socket, count: int) -> bytes | None:
    """Read exactly *count* bytes, or None if the peer closed the connection first."""
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class _UDPServer(socketserver.ThreadingUDPServer):
    # Handler threads are joined by server_close(), so stop() leaves nothing running.
    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], dns_server: DNSServer) -> None:
        self.dns = dns_server
        super().__init__(address, _UDPHandler)


class _TCPServer(socketserver.ThreadingTCPServer):
    # Handler threads are joined by server_close(), so stop() leaves nothing running.
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], dns_server: DNSServer) -> None:
        self.dns = dns_server
        super().__init__(address, _TCPHandler)
