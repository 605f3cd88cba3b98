"""Shared constants and zone text for the domains tests."""

from __future__ import annotations

from whoopadmin.domains import zone_text

HOSTNAME = "whoop.acme.test"
CNAME_TARGET = "edge.whoopadmin.test"
VALIDATION_DOMAIN = "acme-dns.whoopadmin.test"
TOKEN = "k7yq3tq2xg5ma4fcz6bw2hnr4e"
#: Short, so tests of unanswered queries stay fast.
TIMEOUT = 0.3
#: For queries that are answered: generous, so a stalled machine never turns an answer
#: into a timeout (a loopback answer takes about a millisecond).
ANSWER_TIMEOUT = 3.0


def zone(
    origin: str,
    body: str = "",
    *,
    soa_ttl: int = 3600,
    minimum: int = 120,
    ns: dict[str, str] | None = None,
) -> str:
    """Zone text for *origin* with *body*; negative TTL = min(soa_ttl, minimum)."""
    return zone_text(origin, body, negative_ttl=minimum, soa_ttl=soa_ttl, nameservers=ns)


CORRECT = f"""
whoop CNAME {CNAME_TARGET}.
_acme-challenge.whoop CNAME {TOKEN}.{VALIDATION_DOMAIN}.
"""

OUR_ZONE = zone("whoopadmin.test", "edge A 127.0.0.10\n")
