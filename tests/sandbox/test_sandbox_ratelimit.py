"""Per-app rate limits: X-RateLimit-* headers, 429, windows on the sandbox clock."""

from __future__ import annotations


def _setup(whoop, **limits):
    app = whoop.new_app(**limits)
    member = whoop.new_member(days=2)
    return app, whoop.tokens(app, member, scope="read:profile")["access_token"]


def test_minute_limit_headers_and_429(whoop, validate):
    app, token = _setup(whoop, rate_limit_per_minute=5, rate_limit_per_day=10_000)
    remaining = []
    for _ in range(5):
        resp = whoop.api(token, "/v2/user/profile/basic")
        assert resp.status_code == 200
        assert resp.headers["X-RateLimit-Limit"] == "5, 5;window=60, 10000;window=86400"
        assert 1 <= int(resp.headers["X-RateLimit-Reset"]) <= 60
        remaining.append(int(resp.headers["X-RateLimit-Remaining"]))
    assert remaining == [4, 3, 2, 1, 0]
    over = validate(whoop.api(token, "/v2/user/profile/basic"))
    assert over.status_code == 429
    assert over.headers["X-RateLimit-Remaining"] == "0"
    assert over.headers["Retry-After"] == over.headers["X-RateLimit-Reset"]
    assert over.json()["error"] == "rate_limited"
    # Errors count too, and stay limited until the window rolls over.
    assert whoop.api(token, "/v2/cycle/1").status_code == 429
    whoop.control("POST", "/clock", 200, json={"advance_seconds": 60})
    again = whoop.api(token, "/v2/user/profile/basic")
    assert again.status_code == 200 and again.headers["X-RateLimit-Remaining"] == "4"


def test_day_limit(whoop):
    whoop.control("PATCH", "/config", 200, json={"access_token_ttl": 3 * 86_400})
    _app, token = _setup(whoop, rate_limit_per_minute=100, rate_limit_per_day=3)
    for expected in ("2", "1", "0"):
        resp = whoop.api(token, "/v2/user/profile/basic")
        assert resp.headers["X-RateLimit-Remaining"] == expected
        assert resp.headers["X-RateLimit-Limit"].startswith("3, ")
    over = whoop.api(token, "/v2/user/profile/basic")
    assert over.status_code == 429 and int(over.headers["X-RateLimit-Reset"]) > 60
    whoop.control("POST", "/clock", 200, json={"advance_seconds": 120})
    assert whoop.api(token, "/v2/user/profile/basic").status_code == 429
    whoop.control("POST", "/clock", 200, json={"advance_seconds": 86_400})
    assert whoop.api(token, "/v2/user/profile/basic").status_code == 200


def test_default_limits_are_whoops(whoop):
    app = whoop.control(
        "POST", "/apps", 201, json={"redirect_uris": ["http://127.0.0.1:9/auth/whoop/oauth2"]}
    )
    assert (app["rate_limit_per_minute"], app["rate_limit_per_day"]) == (100, 10_000)
    token = whoop.tokens(app, whoop.new_member(days=1), scope="read:profile")["access_token"]
    resp = whoop.api(token, "/v2/user/profile/basic")
    assert resp.headers["X-RateLimit-Limit"] == "100, 100;window=60, 10000;window=86400"
    assert resp.headers["X-RateLimit-Remaining"] == "99"


def test_limits_are_per_app_shared_by_members(whoop):
    app = whoop.new_app(rate_limit_per_minute=3)
    a = whoop.tokens(app, whoop.new_member(days=1), scope="read:profile")["access_token"]
    b = whoop.tokens(app, whoop.new_member(days=1), scope="read:profile")["access_token"]
    _other, c = _setup(whoop, rate_limit_per_minute=3)
    assert [whoop.api(t, "/v2/user/profile/basic").status_code for t in (a, b, a, b)] == [
        200,
        200,
        200,
        429,
    ]
    assert whoop.api(c, "/v2/user/profile/basic").status_code == 200
    # Limits can be raised through the control API.
    whoop.control("PATCH", f"/apps/{app['client_id']}", 200, json={"rate_limit_per_minute": 10})
    ok = whoop.api(a, "/v2/user/profile/basic")
    assert ok.status_code == 200 and ok.headers["X-RateLimit-Remaining"] == "6"


def test_retry_after_can_be_turned_off(whoop):
    _app, token = _setup(whoop, rate_limit_per_minute=1)
    whoop.control("PATCH", "/config", 200, json={"retry_after_header": False})
    whoop.api(token, "/v2/user/profile/basic")
    over = whoop.api(token, "/v2/user/profile/basic")
    assert over.status_code == 429 and "Retry-After" not in over.headers
    assert "X-RateLimit-Reset" in over.headers
