"""Faults on demand: 500s, slow answers, timeouts, 429s; and the sandbox clock."""

from __future__ import annotations

import time

import pytest
import requests


@pytest.fixture
def token(whoop):
    app = whoop.new_app()
    return whoop.tokens(app, whoop.new_member(days=3), scope="read:profile")["access_token"]


def test_errors_for_the_next_n_requests(whoop, token):
    whoop.control("PUT", "/faults", 200, json={"error_rate": 1.0, "remaining": 2})
    statuses = [whoop.api(token, "/v2/user/profile/basic").status_code for _ in range(4)]
    assert statuses == [500, 500, 200, 200]
    assert whoop.control("GET", "/faults", 200)["remaining"] == 0


def test_a_fraction_of_requests_fail(whoop, token):
    whoop.control("PUT", "/faults", 200, json={"error_rate": 0.5})
    statuses = [whoop.api(token, "/v2/user/profile/basic").status_code for _ in range(60)]
    assert 10 <= statuses.count(500) <= 50 and statuses.count(200) + statuses.count(500) == 60
    whoop.control("DELETE", "/faults", 204)
    assert all(whoop.api(token, "/v2/user/profile/basic").status_code == 200 for _ in range(10))


def test_injected_429(whoop, token):
    whoop.control("PUT", "/faults", 200, json={"rate_limit_rate": 1.0, "remaining": 1})
    resp = whoop.api(token, "/v2/user/profile/basic")
    assert resp.status_code == 429 and resp.headers["X-RateLimit-Remaining"] == "0"
    assert "Retry-After" in resp.headers


def test_slow_and_timeout(whoop, token):
    whoop.control(
        "PUT", "/faults", 200, json={"slow_rate": 1.0, "slow_seconds": 0.3, "remaining": 1}
    )
    started = time.monotonic()
    assert whoop.api(token, "/v2/user/profile/basic").status_code == 200
    assert time.monotonic() - started >= 0.3

    whoop.control(
        "PUT", "/faults", 200, json={"timeout_rate": 1.0, "timeout_seconds": 0.5, "remaining": 1}
    )
    with pytest.raises(requests.Timeout):
        whoop.http.get(
            whoop.sb.api_base + "/v2/user/profile/basic",
            headers={"Authorization": f"Bearer {token}"},
            timeout=0.1,
        )
    time.sleep(0.5)  # let the held request finish before the server stops
    assert whoop.api(token, "/v2/user/profile/basic").status_code == 200


def test_oauth_only_when_asked(whoop):
    app, member = whoop.new_app(), whoop.new_member(days=2)
    whoop.control("PUT", "/faults", 200, json={"error_rate": 1.0})
    code = whoop.code(app, member)
    # The control API and (by default) OAuth are never faulted.
    resp = whoop.token_request(
        grant_type="authorization_code",
        code=code,
        redirect_uri=app["redirect_uris"][0],
        client_id=app["client_id"],
        client_secret=app["client_secret"],
    )
    assert resp.status_code == 200
    whoop.control("PUT", "/faults", 200, json={"error_rate": 1.0, "include_oauth": True})
    resp = whoop.token_request(
        grant_type="refresh_token", refresh_token="x", client_id="y", client_secret="z"
    )
    assert resp.status_code == 500 and resp.json()["error"] == "server_error"


@pytest.mark.parametrize(
    "body",
    [
        {"error_rate": 1.5},
        {"error_rate": -0.1},
        {"error_rate": "half"},
        {"error_rate": True},
        {"slow_seconds": -1},
        {"timeout_seconds": 1e9},
        {"remaining": 1.5},
        {"include_oauth": "yes"},
        {"explode": 1},
        [],
        "text",
    ],
)
def test_bad_fault_settings_are_400(whoop, body):
    resp = whoop.http.put(whoop.sb.url + "/_sandbox/faults", json=body)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"
    assert whoop.control("GET", "/faults", 200)["error_rate"] == 0.0


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/faults", '{"error_rate": NaN}'),
        ("/faults", '{"slow_seconds": Infinity}'),
        ("/config", '{"webhook_retry_delays": [Infinity]}'),
        ("/config", '{"default_days": 1000000000}'),
    ],
)
def test_non_finite_numbers_are_400(whoop, path, raw):
    method = "PUT" if path == "/faults" else "PATCH"
    resp = whoop.http.request(
        method,
        whoop.sb.url + "/_sandbox" + path,
        data=raw,
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"


def test_clock(whoop):
    before = whoop.control("GET", "/clock", 200)
    assert before["offset_seconds"] == 0
    after = whoop.control("POST", "/clock", 200, json={"advance_seconds": 7200})
    assert after["offset_seconds"] == 7200 and after["now"] > before["now"]
    assert whoop.control("POST", "/clock", 200, json={"reset": True})["offset_seconds"] == 0
    for bad in ({"advance_seconds": -5}, {"advance_seconds": "1h"}, {}, {"rewind": 3}):
        resp = whoop.http.post(whoop.sb.url + "/_sandbox/clock", json=bad)
        assert resp.status_code == 400, bad
    for raw in ('{"advance_seconds": Infinity}', '{"advance_seconds": NaN}'):
        resp = whoop.http.post(
            whoop.sb.url + "/_sandbox/clock",
            data=raw,
            headers={"Content-Type": "application/json"},
        )
        assert resp.status_code == 400, raw
