"""Destination URLs: shape checks, the SSRF address check and the pinned POST. No Flask.

Server-side request forgery defence: the host is resolved **once**, every address it
resolves to is checked, and the request then connects to a checked address (the URL's
host name still goes in the ``Host`` header and, for https, in SNI and the certificate
check). A name that answers with a public address when the destination is saved and a
private one later (DNS rebinding) is therefore refused at delivery time, and no second
lookup can slip a different address in between the check and the connection.
"""

from __future__ import annotations

import ipaddress
import socket
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
    """The URL may not be used as a destination; the message says why."""


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


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address hidden in an IPv6 one (mapped, 6to4, Teredo, NAT64), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in ipaddress.IPv6Network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal(address: str, allow_private: bool = False) -> str | None:
    """Why ``address`` may not be connected to, or None if it may."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address} is not an IP address"
    if ip.is_unspecified or ip.is_multicast:
        return f"{ip} is not a host address"
    if allow_private:
        return None
    inner = _embedded_ipv4(ip)
    for candidate in (ip, inner) if inner is not None else (ip,):
        if candidate.is_loopback:
            return f"{ip} is a loopback address"
        if candidate.is_link_local:
            return f"{ip} is a link-local address (cloud metadata lives there)"
        if candidate.is_private:
            return f"{ip} is a private address"
        if not candidate.is_global:
            return f"{ip} is not a public address"
    return None


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
        raise DestinationRefused(f"{host} does not resolve ({type(exc).__name__}).") from None
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
    refused without a lookup unless private destinations are allowed.
    """
    scheme, host, port, path = split_url(url, allow_private)
    lowered = host.lower()
    if not allow_private and (lowered == "localhost" or lowered.endswith(".localhost")):
        raise DestinationRefused(f"{host} is a loopback name.")
    addresses = (resolver or resolve)(host, port)
    if not addresses:
        raise DestinationRefused(f"{host} has no address.")
    for address in addresses:
        reason = refusal(address, allow_private)
        if reason:
            raise DestinationRefused(f"{host} resolves to {reason}; it cannot be a destination.")
    return Target(scheme, host, port, path, tuple(addresses))


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
            error = f"could not connect to {address} ({_short(exc)})"
            continue
        except urllib3.exceptions.ConnectTimeoutError:
            error = f"connecting to {address} timed out"
            continue
        except urllib3.exceptions.HTTPError as exc:
            latency = int((time.monotonic() - started) * 1000)
            return Answer(None, latency, f"{type(exc).__name__}: {_short(exc)}", address)
        finally:
            pool.close()
    return Answer(None, int((time.monotonic() - started) * 1000), error)


def _short(exc: BaseException) -> str:
    text = str(exc)
    # urllib3 puts the pool object's repr first; the reason is what matters.
    return text.rsplit(": ", 1)[-1][:200]
