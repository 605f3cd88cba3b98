"""Debian's Caddy on loopback, run with the shipped deploy/Caddyfile in front of whoopadmin.

The Caddyfile is the shipped file itself, with its settings from the environment and a
few test-only global options (free ports, loopback only, Caddy's internal CA) put into
its global options block: its site blocks and its TLS question are what production runs.
The visitor connects from 127.0.0.2, another loopback address, which is not in
TLS_ASK_ALLOWED or METRICS_ALLOWED: to whoopadmin it is as outside as the internet.
"""

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.helpers import reset_schema

CADDY = shutil.which("caddy")
CADDYFILE = Path(__file__).resolve().parents[2] / "deploy" / "Caddyfile"
ADMIN_HOST = "admin.acme.test"
CUSTOMER_HOST = "whoop.acme.test"  # the configured connection's verified subdomain
OUTSIDER = "127.0.0.2"

if CADDY is None and os.environ.get("CI"):
    pytest.fail("caddy is not installed: .ci/run installs Debian's caddy", pytrace=False)
pytestmark = pytest.mark.skipif(CADDY is None, reason="Debian's caddy is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app(make_app, wizard_config):
    """As the production outline sets it: one trusted proxy (Caddy) in front."""
    app = make_app(**wizard_config, PROXY_COUNT=1)
    reset_schema(app)
    return app


@pytest.fixture
def served(configured_app):
    """The configured app on a real HTTP port, admin pages on ADMIN_HOST only."""
    # Set after the wizard, which the test client drives on http://localhost.
    configured_app.config["ADMIN_HOSTS"] = ADMIN_HOST
    configured_app.seen = []  # (path, the client address whoopadmin used) per request

    def recorded(environ, start_response):
        try:
            return configured_app(environ, start_response)
        finally:  # the proxy fix has set REMOTE_ADDR in this environ by now
            configured_app.seen.append((environ.get("PATH_INFO"), environ.get("REMOTE_ADDR")))

    server = make_server("127.0.0.1", 0, recorded, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    server.server_close()
    thread.join(5)


def caddyfile(tmp_path: Path, http_port: int, https_port: int) -> Path:
    """The shipped Caddyfile, with test-only options added to its global options block."""
    text = CADDYFILE.read_text()
    opening = "\n{\n"
    assert opening in text, "the shipped Caddyfile has no global options block"
    start = text.index(opening) + len(opening)
    options = (
        "\tadmin off\n"
        f"\thttp_port {http_port}\n"
        f"\thttps_port {https_port}\n"
        "\tdefault_bind 127.0.0.1\n"
        f"\tstorage file_system {{\n\t\troot {tmp_path}/data\n\t}}\n"
        "\tlocal_certs\n"
        "\tskip_install_trust\n"
    )
    path = tmp_path / "Caddyfile"
    path.write_text(text[:start] + options + text[start:])
    return path


@pytest.fixture
def caddy(served, tmp_path):
    """Caddy running the shipped Caddyfile in front of ``served``; yields its ports."""
    https_port, http_port = free_port(), free_port()
    config = caddyfile(tmp_path, http_port, https_port)
    env = dict(
        os.environ,
        HOME=str(tmp_path),
        XDG_DATA_HOME=str(tmp_path / "xdg"),
        CADDY_ADMIN_HOST=ADMIN_HOST,
        CADDY_ACME_EMAIL="ops@acme.test",
        CADDY_UPSTREAM=f"127.0.0.1:{served}",
    )
    log = open(tmp_path / "caddy.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [CADDY, "run", "--config", str(config), "--adapter", "caddyfile"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", https_port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None:
                    break
                time.sleep(0.1)
        else:
            pytest.fail("caddy did not start listening")
        if process.poll() is not None:
            pytest.fail("caddy exited:\n" + (tmp_path / "caddy.log").read_text())
        yield {"https": https_port, "http": http_port, "app": served}
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _exchange(
    port: int,
    server_name: str,
    path: str = "/healthz",
    headers: str = "",
    *,
    tls: bool = True,
    host: str | None = None,
    source: str = OUTSIDER,
) -> tuple[bytes | None, bytes]:
    """One request from ``source``; returns (the DER certificate, the raw HTTP response)."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host or server_name}\r\n{headers}Connection: close\r\n\r\n"
    )
    with contextlib.ExitStack() as stack:
        channel = stack.enter_context(
            socket.create_connection(("127.0.0.1", port), timeout=15, source_address=(source, 0))
        )
        cert = None
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            channel = stack.enter_context(context.wrap_socket(channel, server_hostname=server_name))
            cert = channel.getpeercert(binary_form=True)
        channel.sendall(request.encode())
        data = b""
        while chunk := channel.recv(4096):
            data += chunk
        return cert, data


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def _body(response: bytes) -> bytes:
    return response.split(b"\r\n\r\n", 1)[1]


def test_verified_hostname_gets_a_certificate_and_reaches_whoopadmin(caddy):
    cert, response = _exchange(caddy["https"], CUSTOMER_HOST)
    assert cert
    assert response.startswith(b"HTTP/1.1 200")
    assert b'"status":"ok"' in response.replace(b" ", b"")
    from cryptography import x509

    names = (
        x509.load_der_x509_certificate(cert)
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value.get_values_for_type(x509.DNSName)
    )
    assert names == [CUSTOMER_HOST]


def test_unknown_hostname_is_refused(caddy):
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _exchange(caddy["https"], "unknown.acme.test")


# Spellings of the two internal endpoints that the app (or another server) might take
# for them: case, %-escapes, doubled slashes, dot segments, suffixes.
INTERNAL_PATHS = [
    "/internal/tls/ask?domain=whoop.acme.test",
    "/internal/tls/ask/?domain=whoop.acme.test",
    "/INTERNAL/tls/ask?domain=whoop.acme.test",
    "/%69nternal/tls/ask?domain=whoop.acme.test",
    "//internal/tls/ask?domain=whoop.acme.test",
    "/internal%2ftls%2fask?domain=whoop.acme.test",
    "/static/../internal/tls/ask?domain=whoop.acme.test",
    "/metrics",
    "/metrics/",
    "/Metrics",
    "/%6detrics",
    "//metrics",
    "/./metrics",
    "/metrics;x",
    "/metrics?format=text",
]


def test_internal_endpoints_are_not_served_from_outside(caddy):
    """Every public site answers 404 itself: whoopadmin never sees the request."""
    for site in (ADMIN_HOST, CUSTOMER_HOST):
        for path in INTERNAL_PATHS:
            for headers in ("", "X-Forwarded-For: 127.0.0.1\r\nX-Real-IP: 127.0.0.1\r\n"):
                _, response = _exchange(caddy["https"], site, path, headers)
                assert _status(response) == 404, (site, path, response[:200])
                assert _body(response) == b"", (site, path)  # Caddy's empty 404, not the app's
        # Plain http only redirects to https (where the 404 above waits).
        _, response = _exchange(caddy["http"], site, "/metrics", tls=False)
        assert _status(response) in (301, 308) and b"whoopadmin_" not in response


def test_a_forged_forwarded_for_does_not_change_the_visitors_address(caddy, configured_app):
    """Caddy replaces the visitor's X-Forwarded-For, so PROXY_COUNT=1 sees the real one."""
    configured_app.seen.clear()
    forged = "X-Forwarded-For: 127.0.0.1\r\nForwarded: for=127.0.0.1\r\n"
    _, response = _exchange(caddy["https"], CUSTOMER_HOST, "/healthz?forged", forged)
    assert _status(response) == 200
    assert [address for path, address in configured_app.seen if path == "/healthz"] == [OUTSIDER]
    # Caddy's own question for the new name's certificate came straight from loopback.
    assert ("/internal/tls/ask", "127.0.0.1") in configured_app.seen


def test_public_pages_still_work_through_caddy(caddy):
    """The block is for the internal endpoints only: pages, assets and hosts still route."""
    _, login = _exchange(caddy["https"], ADMIN_HOST, "/login")
    assert _status(login) == 200 and b"<form" in login
    _, asset = _exchange(caddy["https"], ADMIN_HOST, "/static/whoopadmin.js")
    assert _status(asset) == 200
    _, health = _exchange(caddy["https"], CUSTOMER_HOST, "/healthz")
    assert _status(health) == 200
    # Admin pages do not exist on the customer's subdomain, not even when the visitor
    # claims the admin host in X-Forwarded-Host: Caddy sets that header itself.
    _, forged = _exchange(
        caddy["https"], CUSTOMER_HOST, "/login", f"X-Forwarded-Host: {ADMIN_HOST}\r\n"
    )
    assert _status(forged) == 404
    # A Host that is no host name gets a 400 (from Caddy or whoopadmin), never a 500.
    for bad in ("a..b", "exa%20mple.com", "host:1:2", "[::1"):
        _, response = _exchange(caddy["https"], CUSTOMER_HOST, host=bad)
        assert _status(response) == 400, (bad, response[:200])


def test_the_app_refuses_a_forwarded_request_for_its_internal_endpoints(caddy):
    """Behind the proxy, whoopadmin itself tells Caddy's ask from a forwarded visitor.

    Directly on loopback (as Caddy asks and Prometheus scrapes) the endpoints answer; the
    same request carrying the X-Forwarded-For a proxy adds does not, with the documented
    proxy count: the visitor's address is not allowed.
    """
    app_port = caddy["app"]
    ask = f"/internal/tls/ask?domain={CUSTOMER_HOST}"

    def direct(path: str, headers: str = "") -> bytes:
        host = f"127.0.0.1:{app_port}"
        return _exchange(app_port, host, path, headers, tls=False, source="127.0.0.1")[1]

    assert _status(direct(ask)) == 200
    metrics = direct("/metrics")
    assert _status(metrics) == 200 and b"whoopadmin_" in metrics
    for forwarded in ("203.0.113.7", OUTSIDER, "127.0.0.1, 203.0.113.7"):
        header = f"X-Forwarded-For: {forwarded}\r\n"
        assert _status(direct(ask, header)) == 403, forwarded
        response = direct("/metrics", header)
        assert _status(response) == 403 and b"whoopadmin_" not in response, forwarded
