"""Scopes on refresh: a wider request is refused, a narrower one is honoured only when the
sandbox is told to (RFC 6749 6), and the ``refresh_drop_scopes`` fault narrows every
refresh's grant."""

from __future__ import annotations

import pytest

ALL = "offline read:profile read:body_measurement read:cycles read:recovery read:sleep read:workout"


def _refresh(whoop, app, refresh_token, scope):
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
    }
    if scope is not None:
        form["scope"] = scope
    resp = whoop.token_request(**form)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _status(whoop, token: str, path: str) -> tuple[int, str | None]:
    resp = whoop.api(token, path)
    return resp.status_code, (resp.json().get("error") if resp.status_code != 200 else None)


def test_narrower_refresh_scope_is_ignored_by_default(whoop):
    app, member = whoop.new_app(), whoop.new_member(days=2)
    token = whoop.tokens(app, member)
    fresh = _refresh(whoop, app, token["refresh_token"], "offline")
    assert set(fresh["scope"].split()) == set(ALL.split())


def test_narrower_refresh_scope_honoured_when_configured(whoop):
    whoop.control("PATCH", "/config", 200, json={"refresh_honours_scope": True})
    app, member = whoop.new_app(), whoop.new_member(days=2)
    token = whoop.tokens(app, member)
    fresh = _refresh(whoop, app, token["refresh_token"], "offline read:profile")
    assert set(fresh["scope"].split()) == {"offline", "read:profile"}
    assert _status(whoop, fresh["access_token"], "/v2/activity/sleep") == (
        401,
        "insufficient_scope",
    )
    # Asking again for what was granted at first is now wider than the grant.
    wider = whoop.token_request(
        grant_type="refresh_token",
        refresh_token=fresh["refresh_token"],
        client_id=app["client_id"],
        client_secret=app["client_secret"],
        scope=ALL,
    )
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    # Without a scope the refresh keeps the (narrowed) grant.
    again = _refresh(whoop, app, fresh["refresh_token"], None)
    assert set(again["scope"].split()) == {"offline", "read:profile"}


def test_refresh_drop_scopes_fault(whoop):
    app, member = whoop.new_app(), whoop.new_member(days=2)
    token = whoop.tokens(app, member)
    shown = whoop.control("PUT", "/faults", 200, json={"refresh_drop_scopes": ["read:sleep"]})
    assert shown["refresh_drop_scopes"] == ["read:sleep"]
    fresh = _refresh(whoop, app, token["refresh_token"], ALL)  # asks for everything granted
    assert set(fresh["scope"].split()) == set(ALL.split()) - {"read:sleep"}
    assert _status(whoop, fresh["access_token"], "/v2/activity/sleep") == (
        401,
        "insufficient_scope",
    )
    assert _status(whoop, fresh["access_token"], "/v2/cycle")[0] == 200
    # Turned off, later refreshes keep what is left: a refresh cannot widen a grant.
    whoop.control("DELETE", "/faults", 204)
    later = _refresh(whoop, app, fresh["refresh_token"], None)
    assert "read:sleep" not in later["scope"].split()


@pytest.mark.parametrize(
    "value",
    ["read:sleep", ["read:nothing"], [1], [["read:sleep"]], {"read:sleep": True}, None],
)
def test_refresh_drop_scopes_bad_values(whoop, value):
    resp = whoop.http.put(whoop.sb.url + "/_sandbox/faults", json={"refresh_drop_scopes": value})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_request"
    assert whoop.control("GET", "/faults", 200)["refresh_drop_scopes"] == []


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_refresh_honours_scope_bad_values(whoop, value):
    resp = whoop.http.patch(
        whoop.sb.url + "/_sandbox/config", json={"refresh_honours_scope": value}
    )
    assert resp.status_code == 400, resp.text
    assert whoop.control("GET", "/config", 200)["refresh_honours_scope"] is False
