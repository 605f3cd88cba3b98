"""Why a destination is refused, or a delivery failed, in plain words.

A literal address is not "resolved", no exception class name (gaierror, SSLError…) is
shown, and refusing a private address says how development allows them.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time

import pytest

from tests.destinations.conftest import Receiver
from tests.destinations.support import tls_files
from tests.helpers import csrf_from
from whoopadmin.destinations import transport
from whoopadmin.destinations.service import PRIVATE_HINT
from whoopadmin.destinations.transport import DestinationRefused, check
from whoopadmin.extensions import db

INTERNALS = re.compile(r"[A-Z][a-z]+(Error|Exception)\b|gaierror|_ssl\.c|Errno|\(\w+Error")


def refused(url: str, **kwargs) -> str:
    with pytest.raises(DestinationRefused) as caught:
        check(url, **kwargs)
    message = str(caught.value)
    assert not INTERNALS.search(message), message
    return message


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://10.0.0.5/x", "10.0.0.5 is a private address; it cannot be a destination."),
        ("https://127.0.0.1/x", "127.0.0.1 is a loopback address; it cannot be a destination."),
        (
            "https://169.254.169.254/latest/",
            "169.254.169.254 is a link-local address (cloud metadata lives there); it cannot "
            "be a destination.",
        ),
        (
            "https://[::ffff:10.0.0.5]/x",
            "::ffff:a00:5 stands for the IPv4 address 10.0.0.5, a private address; it cannot "
            "be a destination.",
        ),
        ("https://0.0.0.0/x", "0.0.0.0 is not the address of a host; it cannot be a destination."),
    ],
)
def test_a_literal_address_is_not_said_to_resolve(url, message):
    assert refused(url, resolver=transport.resolve) == message


def test_a_name_says_what_it_resolves_to():
    message = refused("https://intranet.example.test/x", resolver=lambda h, p: ["10.9.8.7"])
    assert message == (
        "intranet.example.test resolves to 10.9.8.7, a private address; it cannot be a destination."
    )


def test_a_name_that_does_not_resolve_is_said_in_words(network_guard):
    # The network guard answers every lookup as the system resolver does for an unknown name.
    message = refused("https://nothing.invalid/x", allow_private=True)
    assert message == "nothing.invalid does not resolve: DNS has no address for that name."


def test_dns_that_does_not_answer_is_said_in_words(monkeypatch):
    def getaddrinfo(*args, **kwargs):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    message = refused("https://slow.example.test/x")
    assert message == (
        "slow.example.test could not be looked up: DNS did not answer in time. Try again later."
    )


# ------------------------------------------------------------- the destination form


@pytest.fixture
def new_page(app, operator_client):
    from tests.factories import make_connection

    with app.app_context():
        conn_id = make_connection().id

    def submit(url: str):
        token = csrf_from(operator_client.get("/destinations/new").get_data(as_text=True))
        data = {"connection_id": str(conn_id), "url": url, "events": ["auth.success"]}
        return operator_client.post("/destinations/new", data={**data, "csrf_token": token})

    return submit


def page_text(response) -> str:
    from html import unescape

    return unescape(response.get_data(as_text=True))


@pytest.mark.parametrize(
    "url",
    ["https://10.0.0.5/hook", "https://[::127.0.0.1]/hook", "https://[::ffff:0:7f00:1]/hook"],
)
def test_the_form_says_how_development_allows_private_addresses(app, new_page, url):
    response = new_page(url)
    assert response.status_code == 400
    text = page_text(response)
    assert "it cannot be a destination. " + PRIVATE_HINT in text
    assert "resolves" not in text
    assert "WHOOPADMIN_ALLOW_PRIVATE_DESTINATIONS=true" in PRIVATE_HINT
    with app.app_context():
        from whoopadmin.destinations.models import Destination

        assert db.session.scalar(db.select(db.func.count(Destination.id))) == 0


def test_other_refusals_carry_no_hint(app, new_page, network_guard):
    for url in ("https://nothing.invalid/hook", "https://0.0.0.0/hook"):
        text = page_text(new_page(url))
        assert "cannot be a destination" in text or "does not resolve" in text
        assert PRIVATE_HINT not in text
        assert not INTERNALS.search(text.split("<footer", 1)[0])


# ------------------------------------------------------------- the delivery log


class Misbehaving:
    """A TCP server on loopback that answers every connection with ``behaviour``."""

    def __init__(self, behaviour) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.behaviour = behaviour
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(65536)
                    self.behaviour(conn)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


def closes(conn) -> None:
    pass  # closes without a word


def not_http(conn) -> None:
    conn.sendall(b"hello there\r\n\r\n")


def silent(conn) -> None:
    time.sleep(1.5)


def post(url: str, timeout: float = 2.0, ca: str | None = None) -> transport.Answer:
    target = check(url, allow_private=True, resolver=lambda h, p: ["127.0.0.1"])
    return transport.post(target, b"{}", {}, timeout=timeout, ca_certs=ca)


@pytest.mark.parametrize(
    ("behaviour", "scheme", "error"),
    [
        (closes, "http", "the connection was closed before an answer came"),
        (not_http, "http", "the answer was not HTTP"),
        (silent, "http", "no answer in time"),
        (not_http, "https", "the TLS handshake failed (does it serve https on that port?)"),
    ],
)
def test_delivery_failures_are_said_in_words(behaviour, scheme, error):
    server = Misbehaving(behaviour)
    try:
        answer = post(f"{scheme}://receiver.test:{server.port}/in", timeout=0.5)
    finally:
        server.close()
    assert answer.status is None and answer.error == error


def test_a_refused_connection_is_said_in_words():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    answer = post(f"http://receiver.test:{port}/in")
    assert answer.error == "could not connect to 127.0.0.1 (connection refused)"


def test_certificate_problems_are_said_in_words(tmp_path):
    ca, cert, key = tls_files(tmp_path, "hooks.tls.test")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with Receiver(ssl_context=context) as server:
        untrusted = post(f"https://hooks.tls.test:{server.port}/in")  # certifi's CAs only
        wrong_name = post(f"https://other.tls.test:{server.port}/in", ca=ca)
        right = post(f"https://hooks.tls.test:{server.port}/in", ca=ca)
    assert untrusted.error.startswith("its TLS certificate was refused: ")
    assert not INTERNALS.search(untrusted.error), untrusted.error
    assert wrong_name.error == "its TLS certificate is not valid for other.tls.test"
    assert right.status == 200
