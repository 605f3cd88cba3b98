"""/metrics and /internal/tls/ask answer this machine only, or (metrics) a bearer token.

Behind a proxy every request comes from the proxy's loopback address, so a forged or
proxy-added X-Forwarded-For must never make a visitor pass for the machine itself.
"""

from __future__ import annotations

import logging

import pytest

from tests.helpers import reset_schema
from whoopadmin.config import ConfigError

TOKEN = "metrics-token-0123456789abcdef"
ASK = "/internal/tls/ask?domain=unknown.acme.test"  # 404 when allowed to ask, 403 when not


@pytest.fixture
def make(make_app, wizard_config):
    def build(**config):
        app = make_app(**wizard_config, **config)
        reset_schema(app)
        return app.test_client()

    return build


def get(client, path, remote="127.0.0.1", **headers):
    return client.get(path, environ_base={"REMOTE_ADDR": remote}, headers=headers)


@pytest.mark.parametrize("proxies", [0, 1])
def test_the_machine_itself_may_ask(make, proxies):
    client = make(PROXY_COUNT=proxies)
    for remote in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        metrics = get(client, "/metrics", remote)
        assert metrics.status_code == 200 and "whoopadmin_" in metrics.get_data(as_text=True)
        assert get(client, ASK, remote).status_code == 404  # asked, and not a verified name


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded"),
    [
        # No proxy configured: a visitor's own address decides.
        (0, "203.0.113.5", None),
        (0, "203.0.113.5", "127.0.0.1"),
        # Caddy in front but WHOOPADMIN_PROXY_COUNT left at 0: every visitor arrives from
        # 127.0.0.1, and the X-Forwarded-For that Caddy adds gives them away.
        (0, "127.0.0.1", "203.0.113.5"),
        (0, "127.0.0.1", "127.0.0.1, 203.0.113.5"),
        # The documented setting: Caddy's X-Forwarded-For names the visitor.
        (1, "127.0.0.1", "203.0.113.5"),
        # A forged first entry in front of a loopback one (the last counts for the
        # visitor's address, but every hop must be internal).
        (1, "127.0.0.1", "203.0.113.5, 127.0.0.1"),
        # The app exposed directly although configured for a proxy: the forged header
        # would name loopback, but the TCP peer is the visitor.
        (1, "203.0.113.5", "127.0.0.1"),
        # Other loopback addresses are not on the list; garbage is nobody.
        (0, "127.0.0.2", None),
        (1, "127.0.0.1", "unknown"),
        (1, "127.0.0.1", ""),
        (0, "127.0.0.1", "127.0.0.1, ::1, 10.0.0.1"),
    ],
)
def test_visitors_and_forged_forwarded_for_are_refused(make, proxies, remote, forwarded):
    client = make(PROXY_COUNT=proxies)
    headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
    metrics = get(client, "/metrics", remote, **headers)
    assert metrics.status_code == 403
    assert "whoopadmin_" not in metrics.get_data(as_text=True)
    assert get(client, ASK, remote, **headers).status_code == 403


def test_allowed_networks(make):
    client = make(METRICS_ALLOWED="127.0.0.1, 10.20.0.0/16", PROXY_COUNT=1)
    assert get(client, "/metrics", "10.20.3.4").status_code == 200
    assert (
        get(client, "/metrics", "127.0.0.1", **{"X-Forwarded-For": "10.20.3.4"}).status_code == 200
    )
    assert get(client, "/metrics", "10.21.0.1").status_code == 403


def test_with_a_token_metrics_need_it_from_anywhere(make, caplog):
    caplog.set_level(logging.DEBUG)
    client = make(METRICS_TOKEN=TOKEN)
    for remote in ("127.0.0.1", "203.0.113.5"):
        response = get(client, "/metrics", remote, Authorization=f"Bearer {TOKEN}")
        assert response.status_code == 200, remote
        assert "whoopadmin_" in response.get_data(as_text=True)
    assert get(client, "/metrics", Authorization=f"bearer  {TOKEN} ").status_code == 200
    # Without it, not even the machine itself.
    missing = get(client, "/metrics")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].lower().startswith("bearer")
    assert "whoopadmin_" not in missing.get_data(as_text=True)
    # The TLS question is unaffected: still the machine only.
    assert get(client, ASK).status_code == 404
    assert get(client, ASK, "203.0.113.5", Authorization=f"Bearer {TOKEN}").status_code == 403
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        ("", 401),
        ("Bearer", 401),
        ("Bearer ", 401),
        ("Bearer    ", 401),
        (TOKEN, 401),
        (f"Basic {TOKEN}", 401),
        (f"Token {TOKEN}", 401),
        ("Bearer wrong", 403),
        (f"Bearer {TOKEN}x", 403),
        (f"Bearer {TOKEN[:-1]}", 403),
        (f"Bearer {TOKEN.upper()}", 403),
        (f"Bearer {TOKEN} {TOKEN}", 403),
        ("Bearer " + "é" * 30, 403),
        ("Bearer \u2603\u2603\u2603", 403),
        ("Bearer \x00" + TOKEN, 403),
        ("Bearer " + "x" * 10000, 403),
        ("Bearer\t" + TOKEN, 401),
    ],
)
def test_malformed_tokens_are_a_401_or_403_never_a_500(make, authorization, status):
    client = make(METRICS_TOKEN=TOKEN)
    response = get(client, "/metrics", Authorization=authorization)
    assert response.status_code == status
    assert "whoopadmin_" not in response.get_data(as_text=True)
    assert TOKEN not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"METRICS_TOKEN": "short"}, "at least 16"),
        ({"METRICS_TOKEN": "a token with spaces in it"}, "printable ASCII"),
        ({"METRICS_TOKEN": "ünïcödé-tökén-0123456789"}, "printable ASCII"),
        ({"METRICS_ALLOWED": "127.0.0.1,localhost"}, "WHOOPADMIN_METRICS_ALLOWED"),
        ({"TLS_ASK_ALLOWED": "10.0.0.0/33"}, "WHOOPADMIN_TLS_ASK_ALLOWED"),
    ],
)
def test_unusable_settings_stop_the_start(make_app, config, message):
    with pytest.raises(ConfigError, match=message):
        make_app(**config)
