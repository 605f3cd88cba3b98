"""The demo's DNS zone, ``demo.localhost``: what an operator published, plus prepared mistakes.

No Flask here. A name the operator types in the wizard has no records until the operator
publishes them (the DNS step's demo-only button), so the first check says "record
missing", as it would before anyone touched a real DNS provider. The prepared names below
are served with the classic mistakes, each producing its finding in the wizard.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import dns.exception
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from whoopadmin.domains import zone_text

ZONE = "demo.localhost"
CNAME_TARGET = f"edge.{ZONE}"
VALIDATION_DOMAIN = f"acme-dns.{ZONE}"
# What every demo zone holds: the CNAME target, and the validation domain's delegation.
BASE_LINES = ("edge A 127.0.0.1", "acme-dns NS ns1")


@dataclass(frozen=True)
class PreparedName:
    """A hostname served with one classic mistake, and the finding it produces."""

    hostname: str
    mistake: str
    finding: str
    lines: tuple[str, ...]  # zone-file lines, relative to ZONE


PREPARED: tuple[PreparedName, ...] = (
    PreparedName(
        f"zone-twice.{ZONE}",
        "the full name typed where the provider adds the zone",
        "zone_duplicated",
        # Relative to the zone: the record lands at zone-twice.demo.localhost.demo.localhost.
        (f"zone-twice.{ZONE} CNAME {CNAME_TARGET}.",),
    ),
    PreparedName(
        f"no-final-dot.{ZONE}",
        "the target typed without its final dot",
        "target_zone_appended",
        (f"no-final-dot CNAME {CNAME_TARGET}",),
    ),
    PreparedName(
        f"wrong-target.{ZONE}",
        "a CNAME to another target",
        "wrong_target",
        (f"wrong-target CNAME old-edge.{ZONE}.", "old-edge A 127.0.0.2"),
    ),
    PreparedName(
        f"a-record.{ZONE}",
        "an A record (proxied or flattened) instead of a CNAME",
        "address_instead_of_cname",
        ("a-record A 127.0.0.1",),
    ),
    PreparedName(
        f"whoop.caa-forbids.{ZONE}",
        "a CAA record that allows only another CA",
        "caa_forbids",
        (f"whoop.caa-forbids CNAME {CNAME_TARGET}.", 'caa-forbids CAA 0 issue "pki.goog"'),
    ),
)


# Names the zone itself uses: a published record there would clash with them (and
# everything under acme-dns is delegated away).
RESERVED_LABELS = ("edge", "old-edge", "ns1", "acme-dns", "caa-forbids")


def reserved(name: str) -> bool:
    """Whether ``name`` is a name the demo zone uses for itself."""
    name = name.rstrip(".").lower()
    return name in {f"{label}.{ZONE}" for label in RESERVED_LABELS} or name.endswith(
        f".acme-dns.{ZONE}"
    )


def in_zone(hostname: str | None) -> bool:
    """Whether the demo DNS serves ``hostname``."""
    return bool(hostname) and (hostname == ZONE or hostname.endswith("." + ZONE))


def prepared(hostname: str | None) -> PreparedName | None:
    """The prepared name ``hostname``, if it is one."""
    return next((p for p in PREPARED if p.hostname == hostname), None)


def record_line(record: Mapping[str, object]) -> str | None:
    """A zone-file line for a published record (name, type, value, ttl), or None if unusable.

    Records come from the audit log of a running demo: anything that does not parse as
    its type is left out rather than breaking the whole zone.
    """
    try:
        name, rtype = str(record["name"]).rstrip("."), str(record["type"]).upper()
        value, ttl = str(record["value"]), int(record.get("ttl") or 300)
    except (KeyError, TypeError, ValueError):
        return None
    if not in_zone(name) or reserved(name) or rtype not in ("CNAME", "TXT"):
        return None
    if rtype == "TXT":
        value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    try:
        dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), value)
    except (dns.exception.DNSException, ValueError):
        return None
    return f"{name}. {ttl} IN {rtype} {value}"


def zone_for(
    published: Iterable[Mapping[str, object]],
    validation_tokens: Mapping[str, str | None],
) -> str:
    """The zone text: the base records, the prepared mistakes, then what was published.

    ``validation_tokens`` maps each connection's hostname to its validation token, so a
    prepared name's own ``_acme-challenge`` record is right and only its mistake shows. A
    prepared name whose records were published is served as published (mistake fixed).
    """
    lines = list(BASE_LINES)
    published_lines = []
    published_names = set()
    for record in published:
        line = record_line(record)
        if line is not None:
            published_lines.append(line)
            published_names.add(str(record["name"]).rstrip("."))
    for name in PREPARED:
        if name.hostname in published_names:
            continue
        lines.extend(name.lines)
        token = validation_tokens.get(name.hostname)
        if token:
            label = name.hostname[: -len(ZONE) - 1]
            lines.append(f"_acme-challenge.{label} CNAME {token}.{VALIDATION_DOMAIN}.")
    return zone_text(ZONE, "\n".join(lines + published_lines))
