"""GET /api/v1/users, GET and DELETE /api/v1/users/<id>: shapes, 404s, and a real revoke."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
import requests
import sqlalchemy as sa

from tests.api.support import ApiClient
from tests.factories import make_link
from whoopadmin.connect.models import Link, LinkEvent
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection

USER_FIELDS = {
    "provider",
    "user_id",
    "reference_id",
    "connection",
    "provider_user_id",
    "whoop_user_id",
    "status",
    "status_reason",
    "scopes",
    "connected_at",
    "revoked_at",
    "created_at",
}
SCOPE = "offline read:profile read:recovery read:sleep"


@pytest.fixture
def api(configured_app, api_key):
    return ApiClient(configured_app, api_key)


@pytest.fixture
def member_link(configured_app, sandbox):
    """A link whose tokens are real sandbox tokens; returns (uid, tokens, member)."""
    member = sandbox.state.create_member(days=3)
    tokens = sandbox.state.grant_tokens(configured_app.whoop_app.client_id, member.user_id, SCOPE)
    with configured_app.app_context():
        link = make_link(whoop_user_id=member.user_id, reference_id="user-7", scopes=SCOPE)
        link.access_token = tokens["access_token"]
        link.refresh_token = tokens["refresh_token"]
        link.email = member.email
        link.first_name = member.first_name
        link.last_name = member.last_name
        db.session.commit()
        return link.uid, tokens, member


def whoop_profile(sandbox, access_token: str) -> int:
    response = requests.get(
        f"{sandbox.api_base}/v2/user/profile/basic",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=5,
    )
    return response.status_code


def secrets_of(app, tokens, member) -> list[str]:
    with app.app_context():
        connection = db.session.scalar(sa.select(Connection))
        client_secret = connection.client_secret
    return [
        tokens["access_token"],
        tokens["refresh_token"],
        client_secret,
        "access-token-value",
        "refresh-token-value",
        member.email,
        member.first_name,
        member.last_name,
    ]


def assert_user_shape(body: dict) -> None:
    assert set(body) == USER_FIELDS
    for name in ("connected_at", "created_at"):
        assert datetime.fromisoformat(body[name]).utcoffset().total_seconds() == 0


def test_get_user(configured_app, api, member_link):
    uid, tokens, member = member_link
    response = api.get(f"/users/{uid}")
    assert response.status_code == 200
    body = response.json
    assert_user_shape(body)
    assert body["user_id"] == uid and body["reference_id"] == "user-7"
    assert body["connection"] == "production"
    assert body["whoop_user_id"] == member.user_id
    assert body["provider_user_id"] == str(member.user_id)
    assert body["status"] == "active" and body["status_reason"] is None
    assert body["provider"] == "whoop"
    assert body["scopes"] == SCOPE.split() and body["revoked_at"] is None
    for secret in secrets_of(configured_app, tokens, member):
        assert secret not in response.get_data(as_text=True)


def test_get_unknown_user(api):
    for uid in ("nope", "0" * 32, "x" * 65, "x" * 500, "%C3%A9"):
        response = api.get(f"/users/{uid}")
        assert response.status_code == 404, uid
        assert response.json["error"] == "not_found"


def test_user_ids_that_cannot_be_one(api):
    for method in ("GET", "DELETE"):
        for uid in ("a%0Ab", "%E2%80%AE", "%09"):
            response = api.open(method, f"/users/{uid}")
            assert response.status_code == 400, uid
            assert response.json["error"] == "invalid_request"
            assert response.json["field"] == "user_id"
        # A NUL may be refused before the view by the app-wide guard ("bad_request").
        response = api.open(method, "/users/a%00b")
        assert response.status_code == 400
        assert response.json["error"] in ("invalid_request", "bad_request")


def test_list_by_reference_id(configured_app, api):
    with configured_app.app_context():
        first = make_link(whoop_user_id=1, reference_id="shared ref/1").uid
        second = make_link(whoop_user_id=2, reference_id="shared ref/1", status="revoked").uid
        make_link(whoop_user_id=3, reference_id="other")
        make_link(whoop_user_id=4, reference_id="SHARED REF/1")
    response = api.get("/users", query_string={"reference_id": "shared ref/1"})
    assert response.status_code == 200
    users = response.json["users"]
    assert sorted(u["user_id"] for u in users) == sorted([first, second])
    for user in users:
        assert_user_shape(user)
        assert user["reference_id"] == "shared ref/1"
    assert "access-token-value" not in response.get_data(as_text=True)

    empty = api.get("/users", query_string={"reference_id": "nobody"})
    assert empty.status_code == 200 and empty.json == {"users": []}


def test_list_needs_a_reference_id(api):
    for query in (
        {},
        {"reference_id": ""},
        {"reference_id": "x" * 256},
        {"other": "1"},
        {"reference_id": "a\nb"},
        {"reference_id": "\u202e"},
    ):
        response = api.get("/users", query_string=query)
        assert response.status_code == 400, query
        assert response.json["error"] == "invalid_request"
        assert response.json["field"] == "reference_id"
    # A NUL may be refused before the view by the app-wide guard ("bad_request").
    response = api.get("/users", query_string={"reference_id": "a\x00b"})
    assert response.status_code == 400
    assert response.json["error"] in ("invalid_request", "bad_request")


def test_list_with_odd_reference_ids(api):
    for value in ("\ufffd", "é" * 255, "' OR 1=1 --", "%", "_", "*"):
        response = api.get("/users", query_string={"reference_id": value})
        assert response.status_code == 200, value
        assert response.json == {"users": []}


def test_delete_revokes_at_whoop_and_wipes_tokens(configured_app, api, sandbox, member_link):
    uid, tokens, member = member_link
    assert whoop_profile(sandbox, tokens["access_token"]) == 200

    response = api.delete(f"/users/{uid}")
    assert response.status_code == 200
    body = response.json
    assert_user_shape(body)
    assert body["user_id"] == uid and body["status"] == "revoked"
    assert body["status_reason"] == "disconnected"
    assert datetime.fromisoformat(body["revoked_at"]).utcoffset().total_seconds() == 0
    for secret in secrets_of(configured_app, tokens, member):
        assert secret not in response.get_data(as_text=True)

    # WHOOP (the sandbox) no longer accepts the token.
    assert whoop_profile(sandbox, tokens["access_token"]) == 401
    with configured_app.app_context():
        link = db.session.scalar(sa.select(Link).where(Link.uid == uid))
        assert link.access_token is None and link.refresh_token is None
        assert link.access_token_sealed is None and link.refresh_token_sealed is None
        assert link.access_expires_at is None
        assert link.status == "revoked" and link.revoked_at is not None
        events = list(db.session.scalars(sa.select(LinkEvent).where(LinkEvent.link_id == link.id)))
        assert [e.kind for e in events] == ["disconnect"]
        assert re.fullmatch(r"api-key:backend \(wa_[\w-]{7}\)", events[0].details["by"])
        assert events[0].details["whoop_revoke_error"] is None
        revoked_at = link.revoked_at

    # A second DELETE is a no-op with the same answer.
    again = api.delete(f"/users/{uid}")
    assert again.status_code == 200 and again.json == body
    with configured_app.app_context():
        link = db.session.scalar(sa.select(Link).where(Link.uid == uid))
        assert link.revoked_at == revoked_at
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LinkEvent)) == 1

    # GET shows the revoked link.
    shown = api.get(f"/users/{uid}")
    assert shown.status_code == 200 and shown.json == body


def test_delete_when_whoop_already_forgot_the_token(configured_app, api):
    """The factory's token is unknown to the sandbox (a 401): the link is still revoked."""
    with configured_app.app_context():
        uid = make_link(whoop_user_id=55, reference_id="u55").uid
    response = api.delete(f"/users/{uid}")
    assert response.status_code == 200 and response.json["status"] == "revoked"
    assert "access-token-value" not in response.get_data(as_text=True)
    with configured_app.app_context():
        link = db.session.scalar(sa.select(Link).where(Link.uid == uid))
        assert link.access_token is None and link.refresh_token is None


def test_delete_unknown_user(configured_app, api):
    with configured_app.app_context():
        uid = make_link(whoop_user_id=56, reference_id="u56").uid
    for bad in ("nope", uid + "0", uid.upper()):
        response = api.delete(f"/users/{bad}")
        assert response.status_code == 404, bad
        assert response.json["error"] == "not_found"
    with configured_app.app_context():
        assert db.session.scalar(sa.select(Link)).status == "active"
