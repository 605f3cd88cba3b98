"""Normalise and refuse the hostnames operators type, and build the DNS records they must add.

Everything here is pure (no DNS, no Flask): the subdomain form calls
:func:`normalise_hostname`, shows :func:`expected_records` as a table, and stores the
token from :func:`validation_token`. Whether the name is a zone apex needs DNS and lives
in :func:`whoopadmin.domains.checks.find_zone`.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
from dataclasses import asdict, dataclass
from typing import Any

import dns.exception
import dns.name

__all__ = [
    "DEFAULT_TTL",
    "VALIDATION_LABEL",
    "ExpectedRecord",
    "InvalidHostname",
    "InvalidRecord",
    "expected_records",
    "make_issuer_record",
    "normalise_hostname",
    "relative_name",
    "validation_token",
]

#: The label the ACME DNS-01 challenge is looked up under (RFC 8555 §8.4).
VALIDATION_LABEL = "_acme-challenge"
#: TTL suggested for new records: short, so a mistake can be fixed quickly.
DEFAULT_TTL = 300

_MAX_NAME = 253  # RFC 1035 §2.3.4, in presentation form without the final dot
_MAX_LABEL = 63
# The hostname must leave room for "_acme-challenge." in front of it.
_MAX_HOSTNAME = _MAX_NAME - len(VALIDATION_LABEL) - 1
_LDH = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_LDH_UNDERSCORE = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


class InvalidHostname(ValueError):
    """A refused hostname: ``reason`` is a stable code, ``str()`` a sentence for humans."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class InvalidRecord(InvalidHostname):
    """An issuer-supplied validation record that cannot be checked (bad name, type or value)."""


@dataclass(frozen=True)
class ExpectedRecord:
    """One row of the "add these records" table.

    ``name`` is the full owner name without the final dot; ``label`` is what goes in a
    DNS provider's Name field (the name relative to ``zone``, or a guess from the first
    label when the zone is not known yet — then ``zone`` is None); ``value`` is a
    hostname with its final dot for CNAMEs, the exact text for TXT.
    """

    purpose: str  # "routing" or "validation"
    type: str  # "CNAME" or "TXT"
    name: str
    label: str
    value: str
    ttl: int = DEFAULT_TTL
    zone: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExpectedRecord:
        """Rebuild from :meth:`to_dict` output."""
        return cls(**data)


def normalise_hostname(text: str | None) -> str:
    """Return *text* as a lower-case ASCII (punycode) hostname without the final dot.

    A pasted URL is accepted and reduced to its host (``https://Whoop.Acme.com/x`` ->
    ``whoop.acme.com``), since that is what the operator meant. Everything the checks
    cannot work with is refused with :class:`InvalidHostname`: empty input, IP addresses,
    wildcards, underscores, labels over 63 or names over 237 characters (so that
    ``_acme-challenge.<name>`` still fits in 253), characters outside letters, digits and
    hyphens, single-label names, and names IDNA cannot encode.
    """
    host = _strip_url(text)
    if not host:
        raise InvalidHostname("empty", "Enter a hostname, for example whoop.example.com.")
    _refuse_ip(host)
    if host.endswith("."):
        host = host[:-1]
    if host.startswith("*") or "*" in host:
        raise InvalidHostname(
            "wildcard",
            f"{host} is a wildcard. Enter one exact hostname, for example whoop.example.com.",
        )
    if "_" in host:
        raise InvalidHostname(
            "underscore",
            f"{host} contains an underscore, which is not allowed in a hostname "
            "(certificates cannot be issued for it). Use a hyphen instead.",
        )
    if any(ch.isspace() for ch in host):
        raise InvalidHostname(
            "bad_characters",
            f"{host!r} contains spaces; a hostname has only letters, digits, hyphens and dots.",
        )
    if ".." in host or host.startswith("."):
        raise InvalidHostname("empty_label", f"{host} has an empty part between two dots.")
    ascii_host = _to_ascii(host)
    labels = ascii_host.split(".")
    for label in labels:
        if len(label) > _MAX_LABEL:
            raise InvalidHostname(
                "label_too_long",
                f"The part {label[:20]}… is {len(label)} characters long; DNS allows at "
                f"most {_MAX_LABEL} per part.",
            )
        if not _LDH.match(label):
            raise InvalidHostname(
                "bad_characters",
                f"The part {label!r} may contain only letters, digits and hyphens, and may "
                "not start or end with a hyphen.",
            )
    if len(labels) < 2:
        raise InvalidHostname(
            "single_label",
            f"{ascii_host} is a single name; enter a full hostname under a domain you own, "
            "for example whoop.example.com.",
        )
    if labels[-1].isdigit():
        raise InvalidHostname(
            "numeric_tld", f"{ascii_host} ends in a number, which no top-level domain does."
        )
    if len(ascii_host) > _MAX_HOSTNAME:
        raise InvalidHostname(
            "name_too_long",
            f"{ascii_host[:30]}… is {len(ascii_host)} characters long; the limit here is "
            f"{_MAX_HOSTNAME} so that {VALIDATION_LABEL}.<hostname> stays within DNS's "
            f"{_MAX_NAME}.",
        )
    return ascii_host


def _strip_url(text: str) -> str:
    """Trim, lower-case, and reduce a pasted URL (scheme, user, port, path) to its host."""
    host = (text or "").strip().lower()
    if _SCHEME.match(host):
        host = _SCHEME.sub("", host, count=1)
        host = re.split(r"[/?#]", host, maxsplit=1)[0]
        host = host.rsplit("@", 1)[-1]
        if host.startswith("["):  # https://[2001:db8::1]:8443/
            return host.split("]", 1)[0] + "]"
        host = re.sub(r":\d*$", "", host)
    elif re.match(r"^[^/:\s]+(:\d+)?/", host):
        # "whoop.acme.com/connect" without a scheme: still clearly a URL.
        host = re.split(r"[/?#]", host, maxsplit=1)[0]
        host = re.sub(r":\d*$", "", host)
    elif re.match(r"^[^:\s]+:\d+$", host):
        host = host.rsplit(":", 1)[0]  # "whoop.acme.com:443"
    return host


def _refuse_ip(host: str) -> None:
    """Refuse IPv4 and IPv6 addresses, bracketed or not."""
    candidate = host.strip("[]").rstrip(".")
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        # Four dotted numbers that overflow (999.1.1.1) are still meant as an IP.
        if not re.fullmatch(r"[0-9.]+", candidate):
            return
    raise InvalidHostname(
        "ip_address",
        f"{candidate} is an IP address. Enter a hostname under a domain you own, "
        "for example whoop.example.com; it will point here with a CNAME record.",
    )


def _to_ascii(host: str) -> str:
    """IDNA-encode (IDNA 2008 with UTS 46 mapping) to punycode, refusing what cannot be encoded."""
    try:
        if host.isascii():
            name = dns.name.from_text(host + ".")
            # Validate existing A-labels (xn--…) by decoding them.
            for label in name.labels:
                if label.startswith(b"xn--"):
                    dns.name.IDNA_2008_Practical.decode(label)
        else:
            name = dns.name.from_unicode(host + ".", idna_codec=dns.name.IDNA_2008_Practical)
    except dns.name.LabelTooLong as exc:
        raise InvalidHostname(
            "label_too_long", f"One part of {host} is longer than {_MAX_LABEL} characters."
        ) from exc
    except dns.name.NameTooLong as exc:
        raise InvalidHostname("name_too_long", f"{host[:30]}… is too long for DNS.") from exc
    except dns.name.EmptyLabel as exc:
        raise InvalidHostname("empty_label", f"{host} has an empty part between two dots.") from exc
    except dns.exception.DNSException as exc:
        raise InvalidHostname(
            "not_idna", f"{host} cannot be a domain name: {_idna_problem(exc)}."
        ) from exc
    return name.to_text(omit_final_dot=True).lower()


def _idna_problem(exc: Exception) -> str:
    """What the IDNA codec refused, in words (its own messages name codecs and exceptions)."""
    text = str(exc)
    if code := re.search(r"U\+([0-9A-Fa-f]{4,6})", text):
        char = chr(int(code.group(1), 16))
        visible = char.isprintable() and not char.isspace()
        shown = f"the character '{char}'" if visible else "an invisible character"
        return f"{shown} (U+{code.group(1).upper()}) is not allowed in one"
    if "punycode" in text.lower():
        return "a part that starts with xn-- is not valid punycode"
    if "directionality" in text.lower() or "bidi" in text.lower():
        return "it mixes right-to-left and left-to-right writing in a way domain names forbid"
    return "it is not a valid internationalised domain name"


def _normalise_target(text: str, what: str, *, allow_underscore: bool = True) -> str:
    """Normalise a pasted record name or CNAME value: lower-case, ASCII, no final dot."""
    value = (text or "").strip().lower()
    if value.endswith("."):
        value = value[:-1]
    if not value:
        raise InvalidRecord("empty", f"The {what} is empty.")
    try:
        ascii_value = _to_ascii(value)
    except InvalidHostname as exc:
        raise InvalidRecord(exc.reason, f"The {what}: {exc.message}") from exc
    pattern = _LDH_UNDERSCORE if allow_underscore else _LDH
    for label in ascii_value.split("."):
        if not pattern.match(label):
            raise InvalidRecord("bad_characters", f"The {what} {value!r} is not a valid DNS name.")
    if "." not in ascii_value:
        raise InvalidRecord("single_label", f"The {what} {value!r} must be a full DNS name.")
    return ascii_value


def validation_token() -> str:
    """A random 26-character DNS label (lower-case base32, 128 bits) for the validation CNAME."""
    return base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=").lower()


def relative_name(name: str, zone: str | None) -> str:
    """*name* relative to *zone* (what a DNS provider's Name field wants), ``@`` for the apex.

    A name outside *zone* (or with no zone) is returned whole.
    """
    name = name.rstrip(".").lower()
    if zone:
        zone = zone.rstrip(".").lower()
        if name == zone:
            return "@"
        if name.endswith("." + zone):
            return name[: -len(zone) - 1]
    return name


def make_issuer_record(name: str, rtype: str, value: str, hostname: str) -> ExpectedRecord:
    """Validate an issuer-supplied validation record (e.g. from a cloud certificate manager).

    The name must be the hostname or sit under the hostname's parent domain (that is where
    certificate managers put theirs: ``_x1.whoop.acme.com``, ``_acme-challenge_x.whoop``);
    the type must be CNAME or TXT; a CNAME value is normalised to a name with a final dot,
    a TXT value loses the quotes a provider's UI may have added.
    """
    hostname = normalise_hostname(hostname)
    rtype = (rtype or "").strip().upper()
    if rtype not in ("CNAME", "TXT"):
        raise InvalidRecord("bad_type", f"The record type must be CNAME or TXT, not {rtype!r}.")
    owner = _normalise_target(name, "record name")
    parent = hostname.split(".", 1)[1]
    if owner != hostname and not owner.endswith("." + parent):
        raise InvalidRecord(
            "outside_domain",
            f"The record name {owner} is not under {parent}, so it cannot validate {hostname}.",
        )
    if rtype == "CNAME":
        target = _normalise_target(value, "record value") + "."
    else:
        target = (value or "").strip()
        if len(target) >= 2 and target[0] == target[-1] == '"':
            target = target[1:-1]
        if not target:
            raise InvalidRecord("empty", "The record value is empty.")
        if len(target) > 2048 or not target.isprintable():
            raise InvalidRecord("bad_value", "The TXT value must be printable text.")
    return ExpectedRecord(purpose="validation", type=rtype, name=owner, label=owner, value=target)


def expected_records(
    hostname: str,
    cname_target: str,
    validation_domain: str | None,
    token: str | None,
    issuer_record: ExpectedRecord | None = None,
    *,
    zone: str | None = None,
    ttl: int = DEFAULT_TTL,
) -> list[ExpectedRecord]:
    """The records the operator must add: the routing CNAME, then the validation record.

    With neither *validation_domain* and *token* nor *issuer_record*, only the routing
    record is returned.

    The validation record is ``_acme-challenge.<hostname> CNAME <token>.<validation_domain>.``
    unless *issuer_record* (from :func:`make_issuer_record`) replaces it. *zone* (from
    :func:`~whoopadmin.domains.checks.find_zone`) makes the labels exact; without it the
    label is the hostname's first label, which is right for the usual
    ``whoop.<registered domain>``.
    """
    hostname = normalise_hostname(hostname)
    target = _normalise_target(cname_target, "CNAME target") + "."
    zone = zone.rstrip(".").lower() if zone else None
    base = zone or hostname.split(".", 1)[1]
    records = [
        ExpectedRecord(
            purpose="routing",
            type="CNAME",
            name=hostname,
            label=relative_name(hostname, base),
            value=target,
            ttl=ttl,
            zone=zone,
        )
    ]
    if issuer_record is not None:
        records.append(
            ExpectedRecord(
                purpose="validation",
                type=issuer_record.type,
                name=issuer_record.name,
                label=relative_name(issuer_record.name, base),
                value=issuer_record.value,
                ttl=ttl,
                zone=zone,
            )
        )
    elif validation_domain is None and token is None:
        pass  # routing only (``whoopadmin dns check`` without a validation record)
    else:
        if not validation_domain or not token:
            raise ValueError("validation_domain and token are needed without an issuer_record")
        if not _LDH.match(token) or len(token) > _MAX_LABEL:
            raise ValueError("the token must be a single DNS label")
        name = f"{VALIDATION_LABEL}.{hostname}"
        records.append(
            ExpectedRecord(
                purpose="validation",
                type="CNAME",
                name=name,
                label=relative_name(name, base),
                value=f"{token}.{_normalise_target(validation_domain, 'validation domain')}.",
                ttl=ttl,
                zone=zone,
            )
        )
    return records
