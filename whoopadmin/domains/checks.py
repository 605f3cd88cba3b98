"""Check a customer's DNS records against their zone's authoritative nameservers.

:func:`check_domain` finds the zone of the hostname, asks **each** authoritative
nameserver directly (no recursive resolver, no cache, so stale negative answers and
half-propagated changes are seen as they are), compares what they say with the expected
records and returns a :class:`CheckResult`: a status (``pending_dns``, ``misconfigured``,
``propagating`` or ``verified``) and *findings* that each say what was seen and the
exact fix. Bad or missing DNS answers become findings, never exceptions.

``nameservers=[(ip, port), …]`` (``WHOOPADMIN_DNS_NAMESERVERS``) sends every query to
those servers and treats them as the authoritative set — how tests and air-gapped
deployments run. Without it, the system resolver is used only to *discover* the zone,
its NS names and their addresses; the records themselves are always read from the
authoritative servers.

Finding codes are stable (stored, shown, matched by the UI): see :data:`FINDING_CODES`.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import dns.exception
import dns.flags
import dns.inet
import dns.message
import dns.name
import dns.nameserver
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.rrset

from whoopadmin.domains.hostnames import (
    ExpectedRecord,
    InvalidHostname,
    normalise_hostname,
    relative_name,
)
from whoopadmin.domains.status import MISCONFIGURED, PENDING_DNS, PROPAGATING, VERIFIED

__all__ = [
    "DEFAULT_CA",
    "FINDING_CODES",
    "CheckResult",
    "DNSTemporaryError",
    "Finding",
    "Nameserver",
    "RecordCheck",
    "ZoneNotFound",
    "check_domain",
    "find_zone",
    "normalise_ca",
    "parse_nameservers",
    "refuse_apex",
]

Nameserver = tuple[str, int]

#: The CA whose certificates the default setup uses; CAA must allow it.
DEFAULT_CA = "letsencrypt.org"
# How a CAA record names a certificate authority: a domain name (RFC 8659 §4.2).
_CA_NAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
DEFAULT_TIMEOUT = 2.0

# Severities: "error" — the operator must change something; "pending" — not there yet,
# or not everywhere yet: wait or add it; "warning" — works, but fragile; "temporary" —
# DNS trouble that the next check may not see; never a failure by itself.
#: Every finding code and its severity.
FINDING_CODES: dict[str, str] = {
    "record_missing": "pending",
    "wrong_target": "error",
    "wrong_value": "error",
    "wrong_type": "error",
    "zone_duplicated": "error",
    "target_zone_appended": "error",
    "address_instead_of_cname": "error",
    "conflicting_records": "error",
    "wildcard": "error",  # downgraded to "warning" when the wildcard happens to be right
    "caa_forbids": "error",
    "apex": "error",
    "zone_not_found": "pending",
    "nameservers_disagree": "pending",
    "timeout": "temporary",
    "servfail": "temporary",
    "lame_nameserver": "temporary",
    "bad_response": "temporary",
    "no_nameservers": "temporary",
}

_TEMPORARY_KINDS = ("timeout", "servfail", "lame_nameserver", "bad_response")
_KNOWN_CAA_TAGS = {"issue", "issuewild", "iodef", "issuemail", "issuevmc", "contactemail"}
_MAX_CNAME_HOPS = 8


def normalise_ca(name: str) -> str:
    """A CA's CAA name (``letsencrypt.org``), lower-cased; ValueError if it cannot be one."""
    text = (name or "").strip().lower().rstrip(".")
    if not _CA_NAME.fullmatch(text):
        raise ValueError(
            f"{name!r} is not a certificate authority's domain as CAA names it "
            "(such as letsencrypt.org)"
        )
    return text


# --------------------------------------------------------------------------- results


@dataclass
class Finding:
    """One thing the check noticed: a stable ``code``, what was ``seen``, and the ``fix``."""

    code: str
    severity: str
    record: str | None  # the record's full name, or None for the whole domain
    message: str
    fix: str
    seen: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {
            "code": self.code,
            "severity": self.severity,
            "record": self.record,
            "message": self.message,
            "fix": self.fix,
            "seen": list(self.seen),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        """Rebuild from :meth:`to_dict` output."""
        return cls(**{**data, "seen": list(data.get("seen", []))})


@dataclass
class RecordCheck:
    """The outcome for one expected record: ``ok``, ``missing``, ``misconfigured``,
    ``propagating`` or ``unknown`` (no nameserver answered), and what each server said."""

    record: ExpectedRecord
    state: str
    seen: dict[str, list[str]] = field(default_factory=dict)
    negative_ttl: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {
            "record": self.record.to_dict(),
            "state": self.state,
            "seen": {k: list(v) for k, v in self.seen.items()},
            "negative_ttl": self.negative_ttl,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecordCheck:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            record=ExpectedRecord.from_dict(data["record"]),
            state=data["state"],
            seen={k: list(v) for k, v in data.get("seen", {}).items()},
            negative_ttl=data.get("negative_ttl"),
        )


@dataclass
class CheckResult:
    """What one check concluded.

    ``temporary`` is true when DNS trouble (timeouts, SERVFAIL…) kept some server from
    answering; :func:`whoopadmin.domains.status.next_status` never treats that alone as
    a failure.
    """

    hostname: str
    zone: str | None
    status: str
    temporary: bool
    findings: list[Finding]
    records: list[RecordCheck]
    nameservers: list[str]
    checked_at: str

    @property
    def answered(self) -> bool:
        """Whether any nameserver gave a usable answer about any record."""
        if any(f.code in ("apex", "zone_not_found") for f in self.findings):
            return True
        return any(r.state != "unknown" for r in self.records)

    def codes(self) -> list[str]:
        """The finding codes, in order (handy in logs and tests)."""
        return [f.code for f in self.findings]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {
            "hostname": self.hostname,
            "zone": self.zone,
            "status": self.status,
            "temporary": self.temporary,
            "findings": [f.to_dict() for f in self.findings],
            "records": [r.to_dict() for r in self.records],
            "nameservers": list(self.nameservers),
            "checked_at": self.checked_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            hostname=data["hostname"],
            zone=data.get("zone"),
            status=data["status"],
            temporary=bool(data.get("temporary")),
            findings=[Finding.from_dict(f) for f in data.get("findings", [])],
            records=[RecordCheck.from_dict(r) for r in data.get("records", [])],
            nameservers=list(data.get("nameservers", [])),
            checked_at=data["checked_at"],
        )


class ZoneNotFound(Exception):
    """No DNS zone holds the hostname (domain not registered, or not served by these servers)."""


class DNSTemporaryError(Exception):
    """DNS could not be asked right now (timeout, SERVFAIL); ``code`` is a finding code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------- nameservers


def parse_nameservers(text: str | None) -> list[Nameserver] | None:
    """Parse ``WHOOPADMIN_DNS_NAMESERVERS`` (``IP[:PORT][,…]``, IPv6 as ``[::1]:53``)."""
    if not text or not text.strip():
        return None
    servers: list[Nameserver] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else "53"
        elif item.count(":") == 1:
            host, port = item.split(":")
        else:
            host, port = item, "53"  # bare IPv4, or bare IPv6 without a port
        try:
            port_number = int(port)
            dns.inet.af_for_address(host)
        except ValueError as exc:
            raise ValueError(f"not an IP[:PORT] nameserver: {item!r}") from exc
        if not 0 < port_number < 65536:
            raise ValueError(f"bad port in nameserver {item!r}")
        servers.append((host, port_number))
    return servers or None


def _resolver(nameservers: Sequence[Nameserver] | None, timeout: float) -> dns.resolver.Resolver:
    """A resolver for discovery (zone, NS, CAA): the given servers, or the system's; no cache."""
    if nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(ip, port) for ip, port in nameservers]
    else:
        resolver = dns.resolver.Resolver()
    resolver.cache = None
    resolver.retry_servfail = False
    resolver.timeout = timeout
    resolver.lifetime = timeout * max(2, len(resolver.nameservers) + 1)
    return resolver


def _no_nameservers_kind(exc: dns.resolver.NoNameservers) -> str:
    """``refused`` if every server refused (not serving that zone), else ``servfail``."""
    errors = exc.kwargs.get("errors") or []
    if errors and all(str(err[3]) in ("REFUSED", "NOTAUTH") for err in errors):
        return "refused"
    return "servfail"


def find_zone(
    hostname: str,
    nameservers: Sequence[Nameserver] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> str:
    """The zone (without the final dot) that holds *hostname*, e.g. ``acme.com``.

    The subdomain step compares it with the hostname to refuse a zone apex. Raises
    :class:`ZoneNotFound` when no zone holds it and :class:`DNSTemporaryError` on
    timeouts and server failures.
    """
    hostname = normalise_hostname(hostname)
    try:
        # Inside the try: without configured servers, a missing resolv.conf raises too.
        resolver = _resolver(nameservers, timeout)
        zone = dns.resolver.zone_for_name(
            hostname + ".", resolver=resolver, lifetime=resolver.lifetime
        )
    except dns.resolver.NoNameservers as exc:
        if _no_nameservers_kind(exc) == "refused":
            raise ZoneNotFound(f"No nameserver serves a zone that holds {hostname}.") from exc
        raise DNSTemporaryError(
            "servfail", f"The nameservers failed to answer for {hostname} (SERVFAIL)."
        ) from exc
    except dns.exception.Timeout as exc:
        raise DNSTemporaryError(
            "timeout", f"No nameserver answered within {_secs(timeout)} for {hostname}."
        ) from exc
    except (dns.resolver.NoRootSOA, dns.resolver.NXDOMAIN, dns.resolver.NoAnswer) as exc:
        raise ZoneNotFound(f"No DNS zone holds {hostname}.") from exc
    except dns.exception.DNSException as exc:
        raise DNSTemporaryError(
            "bad_response", f"DNS gave no usable answer for {hostname}: {_dns_problem(exc)}."
        ) from exc
    # An unregistered domain "belongs" to its TLD (or the root): that is no zone of theirs.
    if len(zone.labels) <= 2:
        raise ZoneNotFound(
            f"{hostname} is not in any registered domain's DNS (only {zone.to_text()} answers)."
        )
    return zone.to_text(omit_final_dot=True)


def refuse_apex(
    hostname: str,
    nameservers: Sequence[Nameserver] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> str | None:
    """For the subdomain form: raise ``InvalidHostname("apex")`` if *hostname* is a zone apex.

    Returns the zone, or None when DNS cannot tell right now (no zone yet, timeout): the
    form then accepts the name and the first check reports ``apex`` or ``zone_not_found``.
    """
    hostname = normalise_hostname(hostname)
    try:
        zone = find_zone(hostname, nameservers, timeout=timeout)
    except (ZoneNotFound, DNSTemporaryError):
        return None
    if zone == hostname:
        raise InvalidHostname(
            "apex",
            f"{hostname} is the apex of its DNS zone, where a CNAME record cannot be added. "
            f"Use a subdomain such as whoop.{hostname}.",
        )
    return zone


@dataclass(frozen=True)
class _Server:
    label: str
    ip: str
    port: int


def _authoritative_servers(
    zone: str,
    resolver: dns.resolver.Resolver,
    port: int,
) -> list[_Server]:
    """One address per NS name of the zone, queried at *port* (injectable for tests).

    IPv4 is preferred: one address per nameserver is enough to see what it serves, and
    many hosts have no IPv6 route, which would make every check look like DNS trouble.
    """
    try:
        ns_answer = resolver.resolve(zone + ".", "NS")
    except dns.exception.Timeout as exc:
        raise DNSTemporaryError("timeout", f"The NS records of {zone} could not be read.") from exc
    except dns.exception.DNSException as exc:
        raise DNSTemporaryError("no_nameservers", f"{zone} has no usable NS records.") from exc
    servers: list[_Server] = []
    for ns in sorted({rd.target.to_text(omit_final_dot=True) for rd in ns_answer}):
        for rdtype in ("A", "AAAA"):
            with contextlib.suppress(dns.exception.DNSException):
                address = min(rd.address for rd in resolver.resolve(ns + ".", rdtype))
                servers.append(_Server(f"{ns} ({address})", address, port))
                break
    if not servers:
        raise DNSTemporaryError(
            "no_nameservers", f"None of the nameservers of {zone} has an address that resolves."
        )
    return servers


# ---------------------------------------------------------------------- asking DNS


@dataclass
class _Reply:
    """One server's reply to one question, reduced to what the checks need."""

    kind: str  # answer | nxdomain | nodata | timeout | servfail | lame_nameserver | bad_response
    rrsets: list[dns.rrset.RRset] = field(default_factory=list)
    negative_ttl: int | None = None
    detail: str = ""


class _Asker:
    """Asks each question of each server once per check; skips servers that already timed out."""

    def __init__(self, timeout: float, *, recursion: bool) -> None:
        self.timeout = timeout
        # With configured nameservers (which may be a recursive resolver in an
        # air-gapped network) ask for recursion and accept non-authoritative answers.
        self.recursion = recursion
        self._replies: dict[tuple[_Server, dns.name.Name, int], _Reply] = {}
        self._timed_out: set[_Server] = set()

    def ask(self, server: _Server, name: dns.name.Name, rdtype: int) -> _Reply:
        key = (server, name, rdtype)
        if key not in self._replies:
            self._replies[key] = self._ask(server, name, rdtype)
        return self._replies[key]

    def _ask(self, server: _Server, name: dns.name.Name, rdtype: int) -> _Reply:
        if server in self._timed_out:
            return _Reply("timeout", detail="did not answer earlier in this check")
        query = dns.message.make_query(name, rdtype, use_edns=0, payload=1232)
        if not self.recursion:
            query.flags &= ~dns.flags.RD
        try:
            response, _ = dns.query.udp_with_fallback(
                query, server.ip, timeout=self.timeout, port=server.port
            )
        except dns.exception.Timeout:
            self._timed_out.add(server)
            return _Reply("timeout", detail=f"no answer within {_secs(self.timeout)}")
        except (dns.exception.DNSException, OSError, ValueError, EOFError) as exc:
            return _Reply("bad_response", detail=_dns_problem(exc))
        rcode = response.rcode()
        if rcode == dns.rcode.SERVFAIL:
            return _Reply("servfail", detail="SERVFAIL")
        if rcode in (dns.rcode.REFUSED, dns.rcode.NOTAUTH):
            return _Reply("lame_nameserver", detail=dns.rcode.to_text(rcode))
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return _Reply("bad_response", detail=dns.rcode.to_text(rcode))
        if not self.recursion and not response.flags & dns.flags.AA:
            return _Reply("lame_nameserver", detail="answer without the AA flag")
        negative_ttl = _negative_ttl(response)
        if rcode == dns.rcode.NXDOMAIN:
            return _Reply("nxdomain", list(response.answer), negative_ttl, "NXDOMAIN")
        if not response.answer:
            return _Reply("nodata", [], negative_ttl, "no records")
        return _Reply("answer", list(response.answer))


def _dns_problem(exc: BaseException) -> str:
    """Why a DNS question got no usable answer, in words (never an exception's class name)."""
    if isinstance(exc, dns.resolver.NoNameservers):
        return "every nameserver failed to answer (SERVFAIL or refused)"
    if isinstance(exc, dns.query.UnexpectedSource):
        return "the reply came from another address than the one asked"
    if isinstance(exc, dns.query.BadResponse):
        return "the reply did not match the question"
    if isinstance(exc, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(exc, OSError):
        return "the network failed"
    if isinstance(exc, (dns.exception.FormError, ValueError, EOFError)):
        return "the reply was malformed"
    return "the reply could not be used"


def _negative_ttl(response: dns.message.Message) -> int | None:
    """RFC 2308 §5: a negative answer is cached for min(SOA TTL, SOA MINIMUM)."""
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return min(rrset.ttl, rrset[0].minimum)
    return None


@dataclass
class _Observation:
    """What one server holds at one name: its CNAME targets and other data, as text."""

    problem: _Reply | None = None
    cnames: list[str] = field(default_factory=list)
    data: dict[str, list[str]] = field(default_factory=dict)
    chased_txt: list[str] = field(default_factory=list)
    nxdomain: bool = False
    negative_ttl: int | None = None

    @property
    def empty(self) -> bool:
        return not self.cnames and not self.data

    def signature(self) -> tuple:
        """Comparable summary (which records, which values) across servers."""
        if self.empty:
            return ("missing",)
        return (
            tuple(sorted(self.cnames)),
            tuple(sorted((t, tuple(sorted(v))) for t, v in self.data.items())),
        )

    def describe(self) -> list[str]:
        """Human-readable records, e.g. ``CNAME lb.example.net.``."""
        if self.problem is not None:
            return [self.problem.detail or self.problem.kind]
        if self.empty:
            return ["NXDOMAIN (the name does not exist)" if self.nxdomain else "no records"]
        lines = [f"CNAME {c}" for c in self.cnames]
        for rdtype, values in sorted(self.data.items()):
            lines.extend(f"{rdtype} {v}" for v in values)
        return lines


def _txt_text(rdata) -> str:
    """A TXT record's strings joined, as the value an issuer compares."""
    return b"".join(rdata.strings).decode("utf-8", "replace")


def _rdata_text(rrset: dns.rrset.RRset) -> list[str]:
    if rrset.rdtype == dns.rdatatype.TXT:
        return [f'"{_txt_text(rd)}"' for rd in rrset]
    return [rd.to_text() for rd in rrset]


def _observe(
    asker: _Asker, server: _Server, name: dns.name.Name, types: Iterable[str]
) -> _Observation:
    """Ask *server* for each of *types* at *name* and merge what it holds at that name."""
    obs = _Observation()
    for rdtype_text in types:
        rdtype = dns.rdatatype.from_text(rdtype_text)
        reply = asker.ask(server, name, rdtype)
        if reply.kind in _TEMPORARY_KINDS:
            obs.problem = reply
            return obs
        if reply.kind == "nxdomain" and not any(r.name == name for r in reply.rrsets):
            obs.nxdomain = True
        if reply.negative_ttl is not None and obs.negative_ttl is None:
            obs.negative_ttl = reply.negative_ttl
        for rrset in reply.rrsets:
            if rrset.rdtype == dns.rdatatype.TXT and rdtype == dns.rdatatype.TXT:
                obs.chased_txt.extend(_txt_text(rd) for rd in rrset)
            if rrset.name != name:
                continue  # data at a CNAME's target, not at this name
            if rrset.rdtype == dns.rdatatype.CNAME:
                for rd in rrset:
                    target = rd.target.to_text()
                    if target not in obs.cnames:
                        obs.cnames.append(target)
            else:
                key = dns.rdatatype.to_text(rrset.rdtype)
                values = obs.data.setdefault(key, [])
                values.extend(v for v in _rdata_text(rrset) if v not in values)
    return obs


# ------------------------------------------------------------------ judging a record


@dataclass
class _Verdict:
    state: str  # ok | missing | error | unknown
    observation: _Observation
    findings: list[Finding] = field(default_factory=list)


class _RecordJudge:
    """Compares what one server holds for one expected record with what it should be."""

    def __init__(
        self,
        record: ExpectedRecord,
        zone: str,
        asker: _Asker,
        check_wildcards: bool,
    ) -> None:
        self.record = record
        self.zone = zone
        self.asker = asker
        self.check_wildcards = check_wildcards
        self.name = dns.name.from_text(record.name + ".")
        self.label = relative_name(record.name, zone)
        self.types = ("CNAME", "A", "AAAA", "TXT") if record.type == "CNAME" else ("TXT", "CNAME")

    def _finding(
        self, code: str, message: str, fix: str, seen: list[str], severity: str | None = None
    ) -> Finding:
        return Finding(code, severity or FINDING_CODES[code], self.record.name, message, fix, seen)

    def _add_fix(self) -> str:
        return (
            f"In the DNS settings of {self.zone}, add a {self.record.type} record with Name "
            f"`{self.label}` and Value `{self.record.value}` (TTL {self.record.ttl} or 'Auto')."
        )

    def judge(self, server: _Server) -> _Verdict:
        obs = _observe(self.asker, server, self.name, self.types)
        if obs.problem is not None:
            return _Verdict("unknown", obs)
        if obs.empty:
            return self._judge_missing(server, obs)
        state, findings = (
            self._judge_cname(obs) if self.record.type == "CNAME" else self._judge_txt(obs)
        )
        if self.check_wildcards:
            wildcard = self._wildcard(server, obs, state)
            if wildcard is not None:
                if wildcard.severity == "error":
                    return _Verdict("error", obs, [wildcard])
                findings.append(wildcard)
        return _Verdict(state, obs, findings)

    def _judge_cname(self, obs: _Observation) -> tuple[str, list[Finding]]:
        expected = self.record.value.lower()
        seen = obs.describe()
        if obs.cnames:
            if len(obs.cnames) > 1 or obs.data:
                extra = [line for line in seen if line != f"CNAME {expected}"]
                return "error", [
                    self._finding(
                        "conflicting_records",
                        f"{self.record.name} has a CNAME and other records at the same "
                        f"name ({'; '.join(seen)}). A CNAME must be the only record at its "
                        "name, so resolvers answer unpredictably.",
                        f"Delete the other records named `{self.label}` ({'; '.join(extra)}) "
                        f"and keep only the CNAME to `{self.record.value}`.",
                        seen,
                    )
                ]
            target = obs.cnames[0].lower()
            if target == expected:
                return "ok", []
            if target == f"{expected}{self.zone}.":
                return "error", [
                    self._finding(
                        "target_zone_appended",
                        f"{self.record.name} points to `{target}`: the DNS provider added "
                        f"{self.zone} to the value because it was typed without a final dot.",
                        f"Edit the record `{self.label}` and set its Value to "
                        f"`{self.record.value}` with the dot at the end (or however your "
                        "provider marks a complete name).",
                        seen,
                    )
                ]
            return "error", [
                self._finding(
                    "wrong_target",
                    f"{self.record.name} currently resolves to `{target}` instead of "
                    f"`{self.record.value}`.",
                    f"Edit the CNAME record `{self.label}` and set its Value to "
                    f"`{self.record.value}`.",
                    seen,
                )
            ]
        if "A" in obs.data or "AAAA" in obs.data:
            return "error", [
                self._finding(
                    "address_instead_of_cname",
                    f"{self.record.name} answers with an address ({'; '.join(seen)}) instead "
                    "of a CNAME. This is what a proxied (e.g. an orange-cloud) or flattened "
                    "record looks like, and it hides where the name really points.",
                    f"Set the record `{self.label}` to DNS only (not proxied, not flattened) "
                    f"and make it a CNAME to `{self.record.value}`; delete any A or AAAA "
                    f"record named `{self.label}`.",
                    seen,
                )
            ]
        return "error", [self._wrong_type(obs, seen)]

    def _judge_txt(self, obs: _Observation) -> tuple[str, list[Finding]]:
        seen = obs.describe()
        if self.record.value in obs.chased_txt:
            return "ok", []
        if "TXT" in obs.data:
            return "error", [
                self._finding(
                    "wrong_value",
                    f"{self.record.name} has TXT {', '.join(obs.data['TXT'])} but not the "
                    f'value "{self.record.value}".',
                    f"Edit the TXT record `{self.label}` and set its Value to exactly "
                    f'"{self.record.value}".',
                    seen,
                )
            ]
        return "error", [self._wrong_type(obs, seen)]

    def _wrong_type(self, obs: _Observation, seen: list[str]) -> Finding:
        found = " and ".join(sorted({line.split(" ", 1)[0] for line in seen}))
        return self._finding(
            "wrong_type",
            f"{self.record.name} has {found} data where a {self.record.type} record is "
            f"expected ({'; '.join(seen)}).",
            f"Delete the {found} record named `{self.label}` (often left over from an earlier "
            f"setup) and add a {self.record.type} record with Value `{self.record.value}`.",
            seen,
        )

    def _judge_missing(self, server: _Server, obs: _Observation) -> _Verdict:
        # The most common mistake: the full name typed into a Name field that already
        # appends the zone, so the record landed at whoop.acme.com.acme.com.
        doubled = dns.name.from_text(f"{self.record.name}.{self.zone}.")
        dup = _observe(self.asker, server, doubled, (self.record.type,))
        if (
            dup.problem is None
            and not dup.empty
            and not self._from_wildcard(server, doubled, dup, (self.record.type,))
        ):
            dup_name = doubled.to_text(omit_final_dot=True)
            values = dup.cnames or dup.data.get(self.record.type, [])
            fix = (
                f"Edit the record `{relative_name(dup_name, self.zone)}`: enter only "
                f"`{self.label}` in the Name field"
            )
            if self.record.type == "CNAME" and values and values[0].lower() != self.record.value:
                fix += f", and set its Value to `{self.record.value}`"
            return _Verdict(
                "error",
                obs,
                [
                    self._finding(
                        "zone_duplicated",
                        f"The record was created as {dup_name}: the DNS provider added "
                        f"{self.zone} to the full name typed in the Name field.",
                        fix + ".",
                        [f"{dup_name}: {line}" for line in dup.describe()],
                    )
                ],
            )
        wait = ""
        if obs.negative_ttl:
            wait = (
                f" Resolvers that looked before may remember that it is missing for up to "
                f"{_secs(obs.negative_ttl)} (the negative-cache TTL in the SOA of "
                f"{self.zone}), so allow that long after adding it."
            )
        return _Verdict(
            "missing",
            obs,
            [
                self._finding(
                    "record_missing",
                    f"No {self.record.type} record found for {self.record.name}"
                    f"{' (the name does not exist)' if obs.nxdomain else ''}.{wait}",
                    self._add_fix(),
                    obs.describe(),
                )
            ],
        )

    def _from_wildcard(
        self, server: _Server, name: dns.name.Name, obs: _Observation, types: Iterable[str]
    ) -> bool:
        """Whether a random sibling of *name* gets the same answer, i.e. a wildcard answers."""
        label = f"whoopadmin-probe-{secrets.token_hex(6)}"
        probe = dns.name.Name((label.encode("ascii"),) + name.parent().labels)
        probe_obs = _observe(self.asker, server, probe, types)
        return probe_obs.problem is None and probe_obs.signature() == obs.signature()

    def _wildcard(self, server: _Server, obs: _Observation, state: str) -> Finding | None:
        """A finding if a wildcard, not a record of the name's own, gives *obs*."""
        if not self._from_wildcard(server, self.name, obs, self.types):
            return None
        parent = self.name.parent()
        parent_text = parent.to_text(omit_final_dot=True)
        seen = obs.describe()
        if state == "ok":
            return self._finding(
                "wildcard",
                f"{self.record.name} is answered by a wildcard record (*.{parent_text} or "
                "one above it), not by a record of its own. It works, but any change to the "
                "wildcard changes it too.",
                self._add_fix().replace("add a", "also add an explicit", 1),
                seen,
                severity="warning",
            )
        return self._finding(
            "wildcard",
            f"{self.record.name} has no record of its own; a wildcard record (*.{parent_text} "
            f"or one above it) answers for it instead ({'; '.join(seen)}).",
            self._add_fix() + " A record of its own takes precedence over the wildcard.",
            seen,
        )


# ---------------------------------------------------------------------------- CAA


def _resolve_caa(
    resolver: dns.resolver.Resolver, name: dns.name.Name, override: bool
) -> tuple[dns.name.Name, dns.rrset.RRset | None]:
    """The CAA RRset at *name*, following CNAMEs (RFC 8659 §3); returns (owner, rrset or None)."""
    current = name
    for _ in range(_MAX_CNAME_HOPS):
        try:
            answer = resolver.resolve(current, "CAA", raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return current, None
        except dns.resolver.NoNameservers as exc:
            # Configured servers refuse names outside their zones (the TLD, the root):
            # there is no CAA there as far as this deployment can tell.
            if override and _no_nameservers_kind(exc) == "refused":
                return current, None
            raise
        if answer.rrset is not None:
            return current, answer.rrset
        if answer.canonical_name == current:
            return current, None
        # An authoritative server stops at a CNAME that leaves its zone: go on from there.
        current = answer.canonical_name
    return current, None


def _check_caa(
    hostname: str, zone: str, ca: str, resolver: dns.resolver.Resolver, override: bool
) -> list[Finding]:
    """RFC 8659: climb from the hostname towards the root; the first CAA RRset found decides."""
    name = dns.name.from_text(hostname + ".")
    apex = dns.name.from_text(zone + ".")
    try:
        while name != dns.name.root:
            try:
                owner, rrset = _resolve_caa(resolver, name, override)
            except dns.exception.DNSException:
                if name.is_subdomain(apex):
                    raise
                # Above the customer's zone (the TLD): CAA there is practically unheard
                # of, and configured servers rarely serve it; don't fail a check on it.
                break
            if rrset is not None:
                return _judge_caa(hostname, zone, ca, name, owner, rrset)
            name = name.parent()
    except dns.exception.Timeout:
        return [
            Finding(
                "timeout",
                "temporary",
                None,
                f"The CAA records for {hostname} could not be read in time.",
                "Nothing to do: the check is retried automatically.",
                [f"CAA {name.to_text(omit_final_dot=True)}: timeout"],
            )
        ]
    except dns.exception.DNSException as exc:
        problem = _dns_problem(exc)
        return [
            Finding(
                "servfail",
                "temporary",
                None,
                f"The CAA records for {hostname} could not be read: {problem}.",
                "Nothing to do: the check is retried automatically.",
                [f"CAA {name.to_text(omit_final_dot=True)}: {problem}"],
            )
        ]
    return []


def _judge_caa(
    hostname: str,
    zone: str,
    ca: str,
    name: dns.name.Name,
    owner: dns.name.Name,
    rrset: dns.rrset.RRset,
) -> list[Finding]:
    where = name.to_text(omit_final_dot=True)
    seen = [f"{where}: CAA {rd.to_text()}" for rd in rrset]
    if owner != name:
        seen.insert(0, f"{where} is a CNAME to {owner.to_text(omit_final_dot=True)}")
    issuers: list[str] = []
    for rd in rrset:
        tag = rd.tag.decode("ascii", "replace").lower()
        if rd.flags & 128 and tag not in _KNOWN_CAA_TAGS:
            return [
                Finding(
                    "caa_forbids",
                    "error",
                    None,
                    f"The CAA records at {where} carry a critical property ({tag}) that no "
                    f"certificate authority may ignore, so {ca} cannot issue for {hostname}.",
                    f"Remove the CAA record `{rd.to_text()}` at `{relative_name(where, zone)}`.",
                    seen,
                )
            ]
        if tag == "issue":
            issuers.append(rd.value.decode("ascii", "replace").split(";", 1)[0].strip().lower())
    if not issuers or ca.lower() in issuers:
        return []
    allowed = ", ".join(i or "(no one)" for i in issuers)
    return [
        Finding(
            "caa_forbids",
            "error",
            None,
            f"The CAA records at {where} allow only {allowed} to issue certificates, so "
            f"{ca} cannot issue one for {hostname}.",
            f'Add a CAA record at `{relative_name(where, zone)}` with Value `0 issue "{ca}"` '
            "(keep the existing ones if you still use those authorities).",
            seen,
        )
    ]


# --------------------------------------------------------------------------- checking


def check_domain(
    hostname: str,
    records: Sequence[ExpectedRecord],
    *,
    nameservers: Sequence[Nameserver] | None = None,
    resolve_ns: bool | None = None,
    ns_port: int = 53,
    timeout: float = DEFAULT_TIMEOUT,
    ca: str | None = DEFAULT_CA,
    check_wildcards: bool = True,
    now: datetime | None = None,
) -> CheckResult:
    """Check *records* (from :func:`~whoopadmin.domains.hostnames.expected_records`) for *hostname*.

    *nameservers* sends every query to those ``(ip, port)`` servers and, unless
    *resolve_ns* is true, treats them as the zone's authoritative servers. Otherwise
    (or with ``resolve_ns=True``) the zone's NS names are resolved and each address is
    queried at *ns_port*. *timeout* bounds each query; *ca* is the certificate authority
    that CAA must allow (None skips CAA, e.g. when an issuer's own record is used).
    """
    hostname = normalise_hostname(hostname)
    checked_at = (now or datetime.now(UTC)).isoformat()
    override = bool(nameservers)
    if resolve_ns is None:
        resolve_ns = not override

    def result(zone, findings, record_checks, servers=()) -> CheckResult:
        return CheckResult(
            hostname=hostname,
            zone=zone,
            status=_overall_status(findings, record_checks),
            temporary=any(f.severity == "temporary" for f in findings),
            findings=findings,
            records=record_checks,
            nameservers=[s.label for s in servers],
            checked_at=checked_at,
        )

    def unknown(state: str = "unknown") -> list[RecordCheck]:
        return [RecordCheck(record=r, state=state) for r in records]

    try:
        zone = find_zone(hostname, nameservers, timeout=timeout)
    except ZoneNotFound as exc:
        finding = Finding(
            "zone_not_found",
            "pending",
            None,
            f"{exc} The domain may not be registered yet, or its nameservers are not set.",
            "Check that the domain is registered and that its nameservers are set at the "
            "registrar, then wait for the next check.",
            [],
        )
        return result(None, [finding], unknown("missing"))
    except DNSTemporaryError as exc:
        finding = Finding(
            exc.code,
            "temporary",
            None,
            exc.message,
            "Nothing to do yet: the check is retried automatically.",
            [],
        )
        return result(None, [finding], unknown())

    records = [replace(r, label=relative_name(r.name, zone), zone=zone) for r in records]
    if zone == hostname:
        finding = Finding(
            "apex",
            "error",
            hostname,
            f"{hostname} is the apex of a DNS zone (it has its own SOA and NS records), and a "
            "CNAME cannot be placed at a zone apex.",
            f"Use a name under it, such as whoop.{hostname}, or remove the separate zone "
            f"for {hostname} and add the records in its parent domain.",
            [f"zone: {zone}"],
        )
        return result(zone, [finding], unknown("misconfigured"))

    resolver = _resolver(nameservers, timeout)
    if resolve_ns:
        try:
            servers = _authoritative_servers(zone, resolver, ns_port)
        except DNSTemporaryError as exc:
            finding = Finding(
                exc.code,
                "temporary",
                None,
                exc.message,
                f"Check the NS records of {zone} at your registrar; the check is retried "
                "automatically.",
                [],
            )
            return result(zone, [finding], unknown())
    else:
        servers = [_Server(f"{ip}:{port}", ip, port) for ip, port in nameservers or ()]

    asker = _Asker(timeout, recursion=not resolve_ns)
    findings: list[Finding] = []
    record_checks: list[RecordCheck] = []
    for record in records:
        judge = _RecordJudge(record, zone, asker, check_wildcards)
        verdicts = {server: judge.judge(server) for server in servers}
        check, record_findings = _merge(record, verdicts)
        record_checks.append(check)
        findings.extend(record_findings)
    if ca:
        findings.extend(_check_caa(hostname, zone, ca, resolver, override))
    return result(zone, _dedupe(findings), record_checks, servers)


def _merge(
    record: ExpectedRecord, verdicts: dict[_Server, _Verdict]
) -> tuple[RecordCheck, list[Finding]]:
    """Combine the servers' verdicts on one record: agreement, or propagation in progress."""
    findings: list[Finding] = []
    seen = {server.label: v.observation.describe() for server, v in verdicts.items()}
    for server, verdict in verdicts.items():
        if verdict.state == "unknown":
            findings.append(_problem_finding(record, server, verdict.observation.problem))
    answered = {s: v for s, v in verdicts.items() if v.state != "unknown"}
    negative = next(
        (v.observation.negative_ttl for v in answered.values() if v.state == "missing"), None
    )
    if not answered:
        return RecordCheck(record, "unknown", seen, None), findings
    signatures = {v.observation.signature() for v in answered.values()}
    states = {v.state for v in answered.values()}
    if len(signatures) == 1:
        first = next(iter(answered.values()))
        state = {"error": "misconfigured"}.get(first.state, first.state)
        return RecordCheck(record, state, seen, negative), first.findings + findings
    views = [f"{s.label}: {'; '.join(v.observation.describe())}" for s, v in answered.items()]
    if "ok" in states:
        state = "propagating"
        message = (
            f"The nameservers of {record.zone} do not all give the same answer for "
            f"{record.name} yet; some already have the correct record. This is normal for a "
            "while after a change, or while moving to another DNS provider."
        )
    else:
        state = "misconfigured" if "error" in states else "missing"
        message = (
            f"The nameservers of {record.zone} give different answers for {record.name}, and "
            "none of them has the correct record."
        )
    disagree = Finding(
        "nameservers_disagree",
        "pending",
        record.name,
        message,
        "Wait a few minutes for the change to reach every nameserver. If it persists, make "
        "sure the record was added at the DNS provider that the domain's NS records point "
        "to, and remove nameservers you no longer use from the registrar.",
        views,
    )
    findings.insert(0, disagree)
    if state != "propagating":
        for verdict in answered.values():
            findings.extend(verdict.findings)
    return RecordCheck(record, state, seen, negative), findings


def _problem_finding(record: ExpectedRecord, server: _Server, reply: _Reply | None) -> Finding:
    """A temporary finding for a server that gave no usable answer."""
    kind = reply.kind if reply is not None else "timeout"
    detail = reply.detail if reply is not None else ""
    messages = {
        "timeout": (
            f"The nameserver {server.label} did not answer in time ({detail}).",
            "Nothing to do yet: the check is retried automatically. If this keeps "
            "happening, check that this nameserver is online.",
        ),
        "servfail": (
            f"The nameserver {server.label} answered SERVFAIL (a server-side failure).",
            "Usually temporary and retried automatically. If it persists, ask your DNS "
            "provider; for a DNSSEC-signed zone, check the DS record at your registrar.",
        ),
        "lame_nameserver": (
            f"The nameserver {server.label} does not serve {record.zone} ({detail}), although "
            "it is listed as one of its nameservers.",
            f"Remove {server.label} from the NS records of {record.zone} at your registrar, "
            "or add the zone to it.",
        ),
        "bad_response": (
            f"The nameserver {server.label} gave no usable answer: {detail}.",
            "Usually temporary and retried automatically; if it persists, ask your DNS provider.",
        ),
    }
    message, fix = messages[kind]
    return Finding(kind, "temporary", record.name, message, fix, [f"{server.label}: {detail}"])


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """One finding per (code, record, message): a dead server is reported once per record."""
    out: list[Finding] = []
    keys: set[tuple] = set()
    for finding in findings:
        key = (finding.code, finding.record, finding.message)
        if key not in keys:
            keys.add(key)
            out.append(finding)
    return out


def _overall_status(findings: list[Finding], records: list[RecordCheck]) -> str:
    """misconfigured > propagating > pending_dns > verified, from findings and record states."""
    states = {r.state for r in records}
    if "misconfigured" in states or any(f.severity == "error" for f in findings):
        return MISCONFIGURED
    if "propagating" in states:
        return PROPAGATING
    if states - {"ok"} or not records:
        return PENDING_DNS
    return VERIFIED


def _secs(seconds: float) -> str:
    """``0.3 s``, ``45 seconds``, ``5 minutes``, ``2 hours`` — for messages."""
    if seconds < 1:
        return f"{seconds:g} s"
    seconds = int(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
