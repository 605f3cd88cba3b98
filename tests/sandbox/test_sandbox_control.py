"""The control API: set-up through HTTP, and bad input always gets a 4xx JSON answer."""

from __future__ import annotations

import pytest


def test_apps_and_members(whoop):
    app = whoop.control(
        "POST",
        "/apps",
        201,
        json={
            "client_id": "my-client",
            "client_secret": "my-secret",
            "redirect_uris": ["https://whoop.acme.test/auth/whoop/oauth2", "acme://callback"],
            "webhook_urls": ["http://127.0.0.1:9/hooks"],
            "rate_limit_per_minute": 7,
            "approved": True,
        },
    )
    assert app["client_id"] == "my-client" and app["client_secret"] == "my-secret"
    assert app["rate_limit_per_day"] == 10_000 and app["approved"] is True
    assert whoop.control("GET", "/apps/my-client", 200)["member_count"] == 0
    assert [a["client_id"] for a in whoop.control("GET", "/apps", 200)] == ["my-client"]
    whoop.control("POST", "/apps", 409, json={"client_id": "my-client"})

    member = whoop.new_member(
        email="ada@example.test", password="s3cret", days=10, timezone_offset="+09:00"
    )
    assert member["timezone_offset"] == "+09:00" and member["password"] == "s3cret"
    detail = whoop.control("GET", f"/members/{member['user_id']}", 200)
    assert detail["counts"]["cycles"] >= 10
    whoop.control("POST", "/members", 409, json={"email": "ada@example.test"})
    overview = whoop.control("GET", "/", 200)
    assert overview["api_base"] == whoop.sb.api_base
    assert overview["token_url"] == whoop.sb.token_url and overview["auth_url"] == whoop.sb.auth_url

    whoop.control("DELETE", "/apps/my-client", 204)
    whoop.control("GET", "/apps/my-client", 404)


def test_authorize_and_token_shortcuts(whoop):
    app, member = whoop.new_app(), whoop.new_member(days=2)
    got = whoop.control(
        "POST",
        "/authorize",
        200,
        json={"client_id": app["client_id"], "user_id": member["user_id"], "state": "abcdefgh"},
    )
    assert got["redirect_url"].startswith(app["redirect_uris"][0] + "?code=")
    assert "state=abcdefgh" in got["redirect_url"]
    token = whoop.token_request(
        grant_type="authorization_code",
        code=got["code"],
        redirect_uri=got["redirect_uri"],
        client_id=app["client_id"],
        client_secret=app["client_secret"],
    )
    assert token.status_code == 200
    direct = whoop.control(
        "POST",
        "/tokens",
        201,
        json={"client_id": app["client_id"], "user_id": member["user_id"], "scope": "read:cycles"},
    )
    assert direct["scope"] == "read:cycles" and "refresh_token" not in direct
    assert whoop.api(direct["access_token"], "/v2/cycle").status_code == 200


def test_same_seed_same_data_other_seed_other_data(whoop):
    from whoopadmin.sandbox.state import SandboxState

    anchor = 1_790_000_000_000
    datasets = []
    for seed in (5, 5, 6):
        state = SandboxState(seed=seed)
        try:
            profile = state.create_member(days=30, anchor_ms=anchor)
            md = state.data(profile.user_id)
            datasets.append([md.cycles.records, md.sleeps.records, md.workouts.records])
        finally:
            state.close()
    assert datasets[0] == datasets[1]
    assert datasets[0] != datasets[2]


ROUTES = [
    ("POST", "/apps"),
    ("PATCH", "/apps/{client_id}"),
    ("POST", "/members"),
    ("POST", "/members/{user_id}/sleeps"),
    ("PATCH", "/members/{user_id}/sleeps/{sleep_id}"),
    ("POST", "/members/{user_id}/workouts"),
    ("PATCH", "/members/{user_id}/workouts/{workout_id}"),
    ("POST", "/authorize"),
    ("POST", "/tokens"),
    ("PUT", "/faults"),
    ("PATCH", "/config"),
    ("POST", "/clock"),
    ("POST", "/partners"),
    ("POST", "/partners/{partner_id}/events"),
]
BAD_BODIES = [
    {"data": "{not json", "headers": {"Content-Type": "application/json"}},
    {"data": "client_id=x", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
    {"json": []},
    {"json": "a string"},
    {"json": 42},
    {"json": None},
    {"json": {"unknown_field": 1}},
    {"json": {"client_id": 5, "user_id": "x", "start": 3, "end": [], "days": -1}},
    {"json": {"redirect_uris": "not-a-list", "email": "no-at-sign", "nap": "yes"}},
    {"json": {"start": "2020-01-01T00:00:00Z", "end": "2019-01-01T00:00:00Z"}},
    {"json": {"start": "2020-01-01T00:00:00", "end": "2099-01-01T00:00:00Z"}},
    {"json": {"score_state": "GREAT"}},
    {"json": {"range_mode": "sideways", "webhook_retry_delays": ["soon"]}},
    {"json": {"advance_seconds": None}},
    {"json": {"user_id": 2**70, "client_id": "nope"}},
    {"json": {"webhook_urls": [" http://127.0.0.1:9/x"], "timezone_offset": "+25:00"}},
]


@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_bad_input_is_a_4xx_json_error(whoop, method, route):
    app = whoop.new_app()
    member = whoop.new_member(days=5)
    token = whoop.tokens(app, member)["access_token"]
    sleep_id = whoop.api(token, "/v2/activity/sleep", limit=1).json()["records"][0]["id"]
    workout_id = whoop.api(token, "/v2/activity/workout", limit=1).json()["records"][0]["id"]
    partner = whoop.control("POST", "/partners", 201, json={})
    path = route.format(
        client_id=app["client_id"],
        user_id=member["user_id"],
        sleep_id=sleep_id,
        workout_id=workout_id,
        partner_id=partner["client_id"],
    )
    for body in BAD_BODIES:
        resp = whoop.http.request(method, f"{whoop.sb.url}/_sandbox{path}", **body)
        assert 400 <= resp.status_code < 500, (path, body, resp.status_code, resp.text)
        assert resp.headers["Content-Type"].startswith("application/json")
        assert resp.json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/_sandbox/members/999999", 404),
        ("GET", "/_sandbox/members/abc", 404),
        ("GET", "/_sandbox/apps/nope", 404),
        ("DELETE", "/_sandbox/members/999999/sleeps/x", 404),
        ("POST", "/_sandbox/partners/nope/events", 400),
        ("GET", "/_sandbox/nothing-here", 404),
        ("DELETE", "/_sandbox/clock", 405),
        ("GET", "/developer/v2/nothing", 404),
        ("GET", "/oauth/oauth2/token", 405),
    ],
)
def test_unknown_things_are_json_errors(whoop, method, path, status):
    resp = whoop.http.request(method, whoop.sb.url + path)
    assert resp.status_code == status
    assert resp.headers["Content-Type"].startswith("application/json") and resp.json()["error"]


def test_member_data_changes_are_validated(whoop):
    member = whoop.new_member(days=5)
    uid = member["user_id"]
    whoop.control("DELETE", f"/members/{uid}/sleeps/00000000-0000-4000-8000-000000000000", 404)
    whoop.control("DELETE", f"/members/{uid}/workouts/nope", 404)
    whoop.control("PATCH", f"/members/{uid}/sleeps/nope", 404, json={"score_state": "SCORED"})
    # A sleep in the future, or before the member's history, is refused.
    whoop.control(
        "POST",
        f"/members/{uid}/sleeps",
        400,
        json={"start": "2099-01-01T00:00:00Z", "end": "2099-01-01T08:00:00Z"},
    )
    whoop.control(
        "POST",
        f"/members/{uid}/sleeps",
        400,
        json={"start": "2001-01-01T00:00:00Z", "end": "2001-01-01T08:00:00Z"},
    )
    # A second main sleep in a cycle is a conflict.
    app = whoop.new_app()
    token = whoop.tokens(app, member)["access_token"]
    sleep = next(
        s
        for s in whoop.api(token, "/v2/activity/sleep", limit=25).json()["records"]
        if not s["nap"]
    )
    whoop.control(
        "POST", f"/members/{uid}/sleeps", 409, json={"start": sleep["start"], "end": sleep["end"]}
    )


def test_member_ids_and_emails_stay_unique(whoop):
    first = whoop.new_member(days=1)
    taken = first["user_id"] + 1  # the id the next generated member would get
    chosen = whoop.new_member(days=1, user_id=taken)
    after = whoop.new_member(days=1)
    assert len({first["user_id"], chosen["user_id"], after["user_id"]}) == 3
    whoop.control("POST", "/members", 409, json={"user_id": taken})
    whoop.control("POST", "/members", 409, json={"email": first["email"].upper()})
    whoop.control("PATCH", "/config", 200, json={"default_days": 4})
    member = whoop.new_member()
    assert whoop.control("GET", f"/members/{member['user_id']}", 200)["days"] == 4
