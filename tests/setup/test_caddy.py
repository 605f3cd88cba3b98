"""Debian's Caddy on loopback asks whoopadmin before issuing on-demand certificates."""

import os
import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest
from werkzeug.serving import make_server

CADDY = shutil.which("caddy")

if CADDY is None and os.environ.get("CI"):
    pytest.fail("caddy is not installed: .ci/run installs Debian's caddy", pytrace=False)
pytestmark = pytest.mark.skipif(CADDY is None, reason="Debian's caddy is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(configured_app):
    """The configured app on a real HTTP port."""
    server = make_server("127.0.0.1", 0, configured_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def caddy(served, tmp_path):
    """Caddy with ``tls internal { on_demand }`` asking whoopadmin; yields its HTTPS port."""
    https_port, http_port = free_port(), free_port()
    config = tmp_path / "Caddyfile"
    config.write_text(
        f"""{{
	admin off
	auto_https disable_redirects
	http_port {http_port}
	https_port {https_port}
	storage file_system {{
		root {tmp_path}/data
	}}
	local_certs
	skip_install_trust
	on_demand_tls {{
		ask http://127.0.0.1:{served}/internal/tls/ask
	}}
}}

https:// {{
	bind 127.0.0.1
	tls internal {{
		on_demand
	}}
	reverse_proxy 127.0.0.1:{served}
}}
"""
    )
    env = dict(os.environ, HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "xdg"))
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
        yield https_port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _handshake(port: int, server_name: str) -> tuple[dict | None, bytes]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = f"GET /healthz HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n"
    with (
        socket.create_connection(("127.0.0.1", port), timeout=15) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        cert = tls.getpeercert(binary_form=True)
        tls.sendall(request.encode())
        data = b""
        while chunk := tls.recv(4096):
            data += chunk
        return cert, data


def test_verified_hostname_gets_a_certificate_and_reaches_whoopadmin(caddy):
    cert, response = _handshake(caddy, "whoop.acme.test")
    assert cert
    assert response.startswith(b"HTTP/1.1 200")
    assert b'"status":"ok"' in response.replace(b" ", b"")
    from cryptography import x509

    names = (
        x509.load_der_x509_certificate(cert)
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value.get_values_for_type(x509.DNSName)
    )
    assert names == ["whoop.acme.test"]


def test_unknown_hostname_is_refused(caddy):
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _handshake(caddy, "unknown.acme.test")
