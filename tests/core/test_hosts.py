"""Malformed and forged Host headers: a clean 400 with nothing logged, never the admin pages."""

from __future__ import annotations

import logging
import socket
import threading

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.serving import make_server
from werkzeug.test import EnvironBuilder, run_wsgi_app

from tests.factories import make_link
from tests.helpers import reset_schema
from tests.webhooks.test_ingest import USER, Hook
from whoopadmin.extensions import db
from whoopadmin.web import BAD_HOST, HostGuard, hostname_of
from whoopadmin.webhooks.models import WebhookEvent

CONNECTION_HOST = "whoop.acme.test"

BAD_HOSTS = [
    "a..b",
    "[::1",
    "host:port:extra",
    "whoop.acme.test:443:1",
    "exa mple.com",
    "exa\tmple.com",
    "exämple.com",  # non-ASCII (a browser sends xn--exmple-cua.com)
    "ｅxample.com",  # fullwidth letter
    "a" * 64 + ".example",  # a label longer than 63
    ("a" * 60 + ".") * 5 + "example",  # 310 characters
    "x" * 5000,
    "",
    ".",
    "..",
    "example.com:99999",
    "example.com:0",
    "example.com:",
    "example.com:8o",
    ":80",
    "[::1]x",
    "[fe80::1%25eth0]",
    "[::g]",
    "999.1.2.3",
    "-lead.example",
    "under_score.example",
    "a/b",
    "a\\b",
    "a@b",
]

ROUTES = [
    ("GET", "/"),
    ("GET", "/login"),
    ("GET", "/setup"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/static/whoopadmin.js"),
    ("GET", "/bootstrap/static/css/bootstrap.min.css"),
    ("GET", "/api/v1/users"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/internal/tls/ask?domain=whoop.acme.test"),
    ("GET", "/metrics"),
    ("GET", "/connect/some-token"),
    ("GET", "/no-such-page"),
    ("POST", "/login"),
    ("POST", "/hooks/whoop/push/client-abc"),
]


def assert_nothing_logged(caplog) -> None:
    """No error, no traceback: a malformed Host is the client's mistake, not ours."""
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert loud == [], [r.getMessage() for r in loud]
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("example.com:8443", "example.com"),
        ("whoop.acme.test.:80", "whoop.acme.test"),
        ("127.0.0.1:5000", "127.0.0.1"),
        ("[::1]", "::1"),
        ("[0:0::1]:80", "::1"),
        ("[::FFFF:127.0.0.1]", "::ffff:7f00:1"),
        ("localhost", "localhost"),
        ("xn--exmple-cua.com", "xn--exmple-cua.com"),
        ("a" * 63 + ".example", "a" * 63 + ".example"),
    ],
)
def test_valid_hosts_give_their_name(host, name):
    assert hostname_of(host) == name


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_unparseable_hosts_have_no_name(host):
    assert hostname_of(host) == ""


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_a_malformed_host_gets_a_400_everywhere_with_nothing_logged(app, host, caplog):
    client = app.test_client()
    caplog.set_level(logging.INFO)
    for method, path in ROUTES:
        response = client.open(path, method=method, headers={"Host": host}, data=b"{}")
        assert response.status_code == 400, (host, path, response.status_code)
        assert BAD_HOST in response.get_data(as_text=True)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
        if path.startswith(("/api/", "/internal/", "/hooks/", "/healthz", "/readyz")):
            assert response.json == {"error": "bad_request", "message": BAD_HOST}
    assert_nothing_logged(caplog)


def test_the_webhook_fast_path_refuses_a_malformed_host(configured_app, caplog):
    """The signed webhook that the fast path stores on the right host gets a 400 elsewhere."""
    with configured_app.app_context():
        make_link(whoop_user_id=USER)
    hook = Hook(configured_app)
    caplog.set_level(logging.INFO)
    for host in ("a..b", "whoop.acme.test:443:1", "whoop..acme.test", "[whoop.acme.test]"):
        response = hook.post(hook.body(trace_id=f"bad-{host}"), headers={"Host": host})
        assert response.status_code == 400, host
        assert response.json["message"] == BAD_HOST
    assert_nothing_logged(caplog)
    with configured_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(WebhookEvent.id))) == 0
    accepted = hook.post(hook.body(trace_id="good"), headers={"Host": CONNECTION_HOST})
    assert accepted.status_code == 200, accepted.data


def test_forged_forwarded_host_is_judged_only_behind_a_proxy(make_app, wizard_config, caplog):
    """X-Forwarded-Host counts only with WHOOPADMIN_PROXY_COUNT; then it is checked too."""
    caplog.set_level(logging.INFO)
    direct = make_app(**wizard_config)
    reset_schema(direct)
    direct = direct.test_client()
    # Without a proxy the header is the visitor's own invention: ignored, bad or not.
    for forged in ("a..b", "[::1", CONNECTION_HOST):
        response = direct.get("/login", headers={"X-Forwarded-Host": forged})
        assert response.status_code == 200, forged

    proxied = make_app(**wizard_config, PROXY_COUNT=1).test_client()  # same database
    for forged in ("a..b", "[::1", "exa mple.com", "ok.example, a..b", "x" * 300):
        response = proxied.get("/login", headers={"X-Forwarded-Host": forged})
        assert response.status_code == 400, forged
        assert response.get_data(as_text=True).strip() == BAD_HOST
    # The last value is the one the trusted proxy set.
    response = proxied.get("/login", headers={"X-Forwarded-Host": "a..b, admin.acme.test"})
    assert response.status_code == 200
    # A port from the proxy is checked as part of the host.
    response = proxied.get("/login", headers={"X-Forwarded-Port": "99999"})
    assert response.status_code == 400
    assert_nothing_logged(caplog)


def test_forged_hosts_never_reach_admin_pages_on_a_connection_host(configured_app):
    """With a connection on whoop.acme.test, its host (however spelled) has no admin pages."""
    client = configured_app.test_client()
    for host in (CONNECTION_HOST, "WHOOP.acme.test.", "whoop.acme.test:8443"):
        assert client.get("/login", headers={"Host": host}).status_code == 404, host
    # A forged X-Forwarded-Host does not move a direct request to the admin host...
    response = client.get(
        "/login", headers={"Host": CONNECTION_HOST, "X-Forwarded-Host": "localhost"}
    )
    assert response.status_code == 404


def test_behind_a_proxy_the_forwarded_host_decides(make_app, wizard_config, wizard):
    """...but behind the proxy it is the host, so a visitor cannot bring the admin host in."""
    wizard.complete()
    proxied = make_app(**wizard_config, PROXY_COUNT=1).test_client()  # the wizard's database
    response = proxied.get(
        "/login", headers={"Host": "localhost", "X-Forwarded-Host": CONNECTION_HOST}
    )
    assert response.status_code == 404


@pytest.mark.parametrize("admin_hosts", ["", "admin.acme.test"])
def test_host_routing_never_takes_an_unparseable_host_for_the_admin_host(app, admin_hosts):
    """Even without the WSGI guard in front, routing itself refuses such a host (400)."""
    app.config["ADMIN_HOSTS"] = admin_hosts
    guard = app.wsgi_app
    assert isinstance(guard, HostGuard)
    app.wsgi_app = guard.wsgi_app  # the app as it was: Flask and the webhook fast path
    client = app.test_client()
    for host in ("[::1", "host:port:extra", "exa mple.com", "exämple.com", "a..b", ""):
        for path in ("/", "/login", "/setup", "/api/v1/users"):
            response = client.get(path, headers={"Host": host})
            assert response.status_code == 400, (host, path, response.status_code)


def test_a_real_server_answers_raw_malformed_hosts_with_a_400(app, caplog):
    """Bytes on the wire, as an attacker's script sends them, through a real HTTP server."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    caplog.set_level(logging.INFO)
    try:
        for host in (b"a..b", b"[::1", b"ex\xc3\xa4mple.com", b"\xff\xfe", b"h:1:2", b"a" * 4000):
            for path in (b"/login", b"/healthz", b"/hooks/whoop/push"):
                method = b"POST" if path.startswith(b"/hooks") else b"GET"
                request = (
                    method + b" " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 2\r\n"
                    b"Connection: close\r\n\r\n{}"
                )
                with socket.create_connection(("127.0.0.1", server.server_port), 10) as sock:
                    sock.sendall(request)
                    answer = b""
                    while chunk := sock.recv(4096):
                        answer += chunk
                assert answer.startswith(b"HTTP/1.1 400"), (host[:20], path, answer[:100])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert_nothing_logged(caplog)


HOST_TEXT = st.one_of(
    st.text(max_size=80),
    # Bytes as a WSGI server hands them on (decoded as Latin-1).
    st.binary(max_size=80).map(lambda b: b.decode("latin-1")),
    # Almost-hosts: labels, dots, brackets, colons and digits in any order.
    st.text(alphabet="ab1-.:[]%_ ", max_size=40),
    st.from_regex(r"\[[0-9a-f:.]{0,45}\](:[0-9]{0,6})?", fullmatch=True),
    st.from_regex(r"[a-z0-9-]{1,70}(\.[a-z0-9-]{0,70}){0,4}\.?(:[0-9]{0,6})?", fullmatch=True),
)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(host=HOST_TEXT)
def test_any_host_header_is_a_page_or_a_400_never_a_crash(app, host):
    """With no connection yet every valid host is an admin host: sign in first, or a 400."""
    # Straight into a WSGI environ: the test client refuses line breaks in headers, and
    # parses the request's URL itself afterwards.
    environ = EnvironBuilder(path="/").get_environ()
    environ["HTTP_HOST"] = host
    body, status, _headers = run_wsgi_app(app, environ, buffered=True)
    text = b"".join(body).decode()
    if hostname_of(host):
        assert status.startswith("302"), host  # to the sign-in page
    else:
        assert status.startswith("400"), host
        assert text.strip() == BAD_HOST
