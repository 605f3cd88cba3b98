"""Who is asking: internal endpoints answer only their own machine, or a bearer token.

Behind a reverse proxy every request arrives from the proxy, usually on loopback, so the
TCP peer alone says nothing. A request counts as internal only when **every** address
it names is allowed: the TCP peer, the client address the trusted proxies report
(``WHOOPADMIN_PROXY_COUNT``) and each entry of ``X-Forwarded-For``. A request that a
proxy forwarded names its client there, so it never passes for the proxy itself, with
any proxy count; a forged ``X-Forwarded-For`` can only add addresses, never remove the
real one. Caddy's own on-demand TLS question and a local Prometheus call the app
directly, with no forwarding headers.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from functools import lru_cache

from flask import request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# A bearer token travels in a header: printable ASCII without spaces, and long enough
# that guessing it is hopeless.
MIN_TOKEN_LENGTH = 16


@lru_cache(maxsize=16)
def parse_networks(setting: str) -> tuple[Network, ...]:
    """``127.0.0.1,::1,10.0.0.0/8`` as networks; ValueError names an entry that is none."""
    networks = []
    for item in str(setting or "").split(","):
        if item.strip():
            try:
                networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{item.strip()!r} is not an IP address or network") from None
    return tuple(networks)


def _allowed(address: str | None, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address((address or "").strip().split("%", 1)[0])
    except ValueError:
        return False  # "unknown", a name, garbage: not provably internal
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped  # a dual-stack socket reports 127.0.0.1 as ::ffff:127.0.0.1
    return any(ip in network for network in networks)


def internal_request(allowed: str) -> bool:
    """Whether the TCP peer, the reported client and every forwarded address are allowed."""
    networks = parse_networks(allowed)
    environ = request.environ
    peer = environ.get("werkzeug.proxy_fix.orig", {}).get("REMOTE_ADDR", request.remote_addr)
    hops = [peer, request.remote_addr]
    for header in request.headers.getlist("X-Forwarded-For"):
        hops.extend(header.split(","))
    return all(_allowed(hop, networks) for hop in hops)


def check_token(token: str) -> str | None:
    """Why ``token`` may not be a bearer token (None if it may): for the start-up check."""
    if len(token) < MIN_TOKEN_LENGTH:
        return f"must be at least {MIN_TOKEN_LENGTH} characters long"
    if not all("!" <= c <= "~" for c in token):
        return "must be printable ASCII without spaces"
    return None


def bearer_matches(token: str) -> bool | None:
    """Whether the request's ``Authorization: Bearer`` is ``token``; None if it has none.

    Compared in constant time (over digests, so not even the length leaks). Any header,
    however malformed or un-ASCII, is an answer, never an exception.
    """
    scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        return None
    digest = hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(digest, hashlib.sha256(token.encode()).digest())
