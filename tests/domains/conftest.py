"""Fixtures for the domains tests: real authoritative DNS servers on loopback, no mocks.

Every check in these tests passes ``nameservers=[…]`` pointing at 127.0.0.0/8, so no
query ever leaves the machine and /etc/resolv.conf is never read.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

import pytest

from tests.domains.support import (
    CNAME_TARGET,
    HOSTNAME,
    OUR_ZONE,
    TOKEN,
    VALIDATION_DOMAIN,
    zone,
)
from whoopadmin.domains import DNSServer, expected_records

_guard = {"on": False}


def _loopback_only(event: str, args: tuple) -> None:
    """Audit hook: while a domains test runs, any socket use off loopback is an error."""
    if not _guard["on"] or event not in ("socket.connect", "socket.sendto", "socket.bind"):
        return
    address = args[-1]
    if isinstance(address, tuple) and address and isinstance(address[0], str):
        host = address[0]
        if not (host.startswith("127.") or host == "::1" or host in ("", "0.0.0.0")):
            raise RuntimeError(f"a domains test tried to reach {address}: only loopback is allowed")


sys.addaudithook(_loopback_only)  # audit hooks cannot be removed; the flag switches it


@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[None]:
    """Fail any test here that would send a packet beyond 127.0.0.0/8 (or ::1)."""
    _guard["on"] = True
    try:
        yield
    finally:
        _guard["on"] = False


@pytest.fixture
def records():
    """The records the wizard asks for, for HOSTNAME."""
    return expected_records(HOSTNAME, CNAME_TARGET, VALIDATION_DOMAIN, TOKEN)


@pytest.fixture
def serve() -> Iterator[Callable[..., DNSServer]]:
    """Start DNS servers on loopback: ``serve(acme_body, **kwargs)``; all stopped afterwards.

    The acme.test zone gets *acme_body* (None leaves acme.test out); whoopadmin.test is
    always served, as our own zone would be.
    """
    servers: list[DNSServer] = []

    def start(
        acme_body: str | None = "",
        *,
        extra: dict[str, str] | None = None,
        lenient: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        soa_ttl: int = 3600,
        minimum: int = 120,
        ns: dict[str, str] | None = None,
    ) -> DNSServer:
        zones = {"whoopadmin.test": OUR_ZONE, **(extra or {})}
        if acme_body is not None:
            zones["acme.test"] = zone(
                "acme.test", acme_body, soa_ttl=soa_ttl, minimum=minimum, ns=ns
            )
        server = DNSServer(zones, host=host, port=port, lenient=lenient)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
