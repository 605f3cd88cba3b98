"""Destination URLs: shape checks, the SSRF address check and the pinned POST. No Flask.

Server-side request forgery defence: the host is resolved **once**, every address it
resolves to is checked, and the request then connects to a checked address (the URL's
host name still goes in the ``Host`` header and, for https, in SNI and the certificate
check). A name that answers with a public address when the destination is saved and a
private one later (DNS rebinding) is therefore refused at delivery time, and no second
lookup can slip a different address in between the check and the connection.
"""

from __future__ import annotations

import errno
import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import urllib3

MAX_URL_LENGTH = 2048
# Only this much of a receiver's answer is read (it goes into the delivery log).
MAX_ANSWER_BYTES = 512

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


class DestinationRefused(ValueError):
    """The URL may not be used as a destination; the message says why.

    ``private`` is true when the reason is a non-public address or name, which allowing
    private destinations (development only) would let through.
    """

    def __init__(self, message: str, *, private: bool = False) -> None:
        super().__init__(message)
        self.private = private


@dataclass(frozen=True)
class Target:
    """A checked destination: scheme, host name, port, path and the addresses checked."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        """The ``Host`` header for this URL (the default port is left out)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class Answer:
    """What a POST got: HTTP status (None if no answer), latency, a short error text."""

    status: int | None
    latency_ms: int
    error: str | None = None
    address: str | None = None

    @property
    def ok(self) -> bool:
        """2xx counts as delivered; anything else (including redirects) is retried."""
        return self.status is not None and 200 <= self.status < 300


def split_url(url: str, allow_private: bool = False) -> tuple[str, str, int, str]:
    """Check the URL's shape; return (scheme, host, port, path with query)."""
    url = (url or "").strip()
    if not url:
        raise DestinationRefused("Enter the destination URL.")
    if len(url) > MAX_URL_LENGTH:
        raise DestinationRefused(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise DestinationRefused("The URL contains spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise DestinationRefused("That is not a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise DestinationRefused("The URL must start with https:// (or http://).")
    if scheme == "http" and not allow_private:
        raise DestinationRefused(
            "Use https://: deliveries carry health data (http:// is allowed only when "
            "private destinations are, for development)."
        )
    if parts.username is not None or parts.password is not None:
        raise DestinationRefused("Put no user name or password in the URL.")
    if parts.fragment:
        raise DestinationRefused("The URL must not have a #fragment.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise DestinationRefused("The URL has no host name.")
    if port == 0:
        raise DestinationRefused("The URL's port must be between 1 and 65535.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, host, port or (443 if scheme == "https" else 80), path


# IPv6 addresses that carry an IPv4 address reach (or are translated to) that IPv4 host,
# so they are judged as that host: IPv4-mapped ::ffff:a.b.c.d (ipaddress knows it),
# IPv4-compatible ::a.b.c.d (RFC 4291, deprecated), IPv4-translated ::ffff:0:a.b.c.d
# (SIIT, RFC 6145), NAT64 64:ff9b::/96 (RFC 6052) and the local-use 64:ff9b:1::/48
# (RFC 8215), 6to4 2002::/16 and Teredo 2001::/32 (ipaddress knows both).
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
# Where RFC 6052 puts the IPv4 address for each prefix length a local-use NAT64 may have:
# the local operator chooses, so every place must hold a public address.
_NAT64_LOCAL_PREFIXES = (96, 64, 56, 48)


def _rfc6052(ip: ipaddress.IPv6Address, prefix: int) -> ipaddress.IPv4Address:
    """The IPv4 address in ``ip`` behind a NAT64 prefix of ``prefix`` bits (RFC 6052 §2.2)."""
    bits = f"{int(ip):0128b}"
    # Bits 64 to 71 (the "u" octet) never carry address bits.
    embedded = bits[96:] if prefix == 96 else (bits[prefix:64] + bits[72:])[:32]
    return ipaddress.IPv4Address(int(embedded, 2))


def embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (see above); empty for any other address."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    if ip.ipv4_mapped:
        return [ip.ipv4_mapped]
    if ip.sixtofour:
        return [ip.sixtofour]
    if ip.teredo:
        server, client = ip.teredo  # the client's address is stored bit-inverted
        return [client, server]
    if ip in _NAT64_LOCAL:
        return [_rfc6052(ip, prefix) for prefix in _NAT64_LOCAL_PREFIXES]
    if ip in _NAT64 or ip in _TRANSLATED or (ip in _COMPATIBLE and int(ip) > 1):
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]  # :: and ::1 are themselves
    return []


def _kind(ip: IPAddress) -> str | None:
    """What makes ``ip`` unfit for a destination, as words; None if it is public."""
    if ip.is_unspecified or ip.is_multicast:
        return "not the address of a host"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "not a public address"
    return None


def _judge(address: str, allow_private: bool) -> tuple[str, str, str] | None:
    """(the address, what it stands for or "", what makes it unfit), or None if it is fit."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address, "", "not an IP address"
    if ip.is_unspecified or ip.is_multicast:
        return str(ip), "", "not the address of a host"
    if allow_private:
        return None
    inner = embedded_ipv4(ip)
    for candidate in inner:
        if kind := _kind(candidate):
            return str(ip), f"the IPv4 address {candidate}", kind
    kind = None if inner else _kind(ip)
    return (str(ip), "", kind) if kind else None


def refusal(address: str, allow_private: bool = False) -> str | None:
    """Why ``address`` may not be connected to, in words, or None if it may.

    ``10.0.0.5 is a private address``; an IPv6 address that carries an IPv4 address is
    judged by that: ``::ffff:a00:5 stands for the IPv4 address 10.0.0.5, a private address``.
    """
    verdict = _judge(address, allow_private)
    if verdict is None:
        return None
    ip, inner, kind = verdict
    return f"{ip} stands for {inner}, {kind}" if inner else f"{ip} is {kind}"


def _lookup_failure(host: str, exc: Exception) -> str:
    """Why ``host`` could not be looked up, in words (never an exception's class name)."""
    if isinstance(exc, UnicodeError):
        return f"{host} is not a valid host name."
    code = exc.errno if isinstance(exc, socket.gaierror) else None
    if code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)):
        return f"{host} does not resolve: DNS has no address for that name."
    if code == socket.EAI_AGAIN:
        return f"{host} could not be looked up: DNS did not answer in time. Try again later."
    return f"{host} could not be looked up: DNS failed to answer. Try again later."


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IP literals resolve to themselves)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [host]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise DestinationRefused(_lookup_failure(host, exc)) from None
    found: list[str] = []
    for family, *_rest, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in found:
            found.append(sockaddr[0])
    if not found:
        raise DestinationRefused(f"{host} has no IPv4 or IPv6 address.")
    return found


def check(url: str, allow_private: bool = False, resolver: Resolver | None = None) -> Target:
    """Check ``url`` and every address its host resolves to; DestinationRefused if any fails.

    ``localhost`` and ``*.localhost`` are loopback by definition (RFC 6761) and are
    refused without a lookup unless private destinations are allowed. A refusal for a
    non-public address has ``private`` set (the form says how to allow them).
    """
    scheme, host, port, path = split_url(url, allow_private)
    lowered = host.lower()
    if not allow_private and (lowered == "localhost" or lowered.endswith(".localhost")):
        raise DestinationRefused(f"{host} is a loopback name.", private=True)
    addresses = (resolver or resolve)(host, port)
    if not addresses:
        raise DestinationRefused(f"{host} has no address.")
    literal = _is_literal(host)
    for address in addresses:
        verdict = _judge(address, allow_private)
        if verdict is None:
            continue
        ip, inner, kind = verdict
        if literal:  # a literal address is not "resolved": say what it is
            reason = refusal(address, allow_private)
        elif inner:
            reason = f"{host} resolves to {ip}, which stands for {inner}, {kind}"
        else:
            reason = f"{host} resolves to {ip}, {kind}"
        raise DestinationRefused(
            f"{reason}; it cannot be a destination.",
            # Allowing private destinations would let it through (development only).
            private=_judge(address, True) is None,
        )
    return Target(scheme, host, port, path, tuple(addresses))


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _pool(
    target: Target, address: str, timeout: float, ca_certs: str | None = None
) -> urllib3.HTTPConnectionPool:
    options = {
        "timeout": urllib3.Timeout(connect=timeout, read=timeout),
        "retries": False,
        "maxsize": 1,
    }
    if target.scheme == "https":
        # Connect to the checked address, but check the certificate of the URL's name.
        return urllib3.HTTPSConnectionPool(
            address,
            target.port,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_certs or certifi.where(),
            **options,
        )
    return urllib3.HTTPConnectionPool(address, target.port, **options)


def post(
    target: Target,
    body: bytes,
    headers: dict[str, str],
    timeout: float = 10.0,
    ca_certs: str | None = None,
) -> Answer:
    """POST ``body`` to a checked target, connecting only to its checked addresses.

    ``ca_certs`` is a CA bundle file for https (default: certifi's).
    The next address is tried only when connecting fails (nothing was sent yet).
    Redirects are not followed. Never raises for network errors: they become the answer.
    """
    headers = {**headers, "Host": target.host_header, "Content-Type": "application/json"}
    started = time.monotonic()
    error = "no address"
    for address in target.addresses:
        pool = _pool(target, address, timeout, ca_certs)
        try:
            response = pool.urlopen(
                "POST",
                target.path,
                body=body,
                headers=headers,
                redirect=False,
                preload_content=False,
                assert_same_host=False,
            )
            try:
                response.read(MAX_ANSWER_BYTES)
            except urllib3.exceptions.HTTPError:
                pass  # the status is what counts; a broken body does not undo it
            finally:
                response.release_conn()
                response.close()
            latency = int((time.monotonic() - started) * 1000)
            return Answer(response.status, latency, address=address)
        except urllib3.exceptions.NewConnectionError as exc:
            error = f"could not connect to {address} ({_describe(exc, target)})"
            continue
        except urllib3.exceptions.ConnectTimeoutError:
            error = f"connecting to {address} timed out"
            continue
        except urllib3.exceptions.HTTPError as exc:
            latency = int((time.monotonic() - started) * 1000)
            return Answer(None, latency, _describe(exc, target), address)
        finally:
            pool.close()
    return Answer(None, int((time.monotonic() - started) * 1000), error)


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and the errors it wraps (urllib3 keeps the socket's error in its args)."""
    found: list[BaseException] = []
    todo = [exc]
    while todo and len(found) < 20:
        current = todo.pop()
        if current in found:
            continue
        found.append(current)
        todo += [a for a in current.args if isinstance(a, BaseException)]
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
    return found


def _describe(exc: urllib3.exceptions.HTTPError, target: Target) -> str:
    """What went wrong, in words for the delivery log (never an exception's class name)."""
    causes = _causes(exc)
    text = " ".join(str(c) for c in causes).lower()
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError) or any(
        isinstance(c, TimeoutError) for c in causes
    ):
        return "no answer in time"
    if isinstance(exc, urllib3.exceptions.SSLError):
        for cause in causes:
            if isinstance(cause, ssl.SSLCertVerificationError):
                return f"its TLS certificate was refused: {cause.verify_message}"
        if "subjectaltname" in text or "hostname" in text or "doesn't match" in text:
            return f"its TLS certificate is not valid for {target.host}"
        return "the TLS handshake failed (does it serve https on that port?)"
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return "connection refused"
    if any(isinstance(c, OSError) and c.errno in _UNREACHABLE for c in causes):
        return "no route to that address"
    if any(isinstance(c, ConnectionError) for c in causes):  # reset, or closed (EOF)
        return "the connection was closed before an answer came"
    if any(isinstance(c, http.client.HTTPException) for c in causes):
        return "the answer was not HTTP"
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return "the connection failed"
    return "the answer could not be read"


_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL}
