"""Scoped keys as an attacker with a narrow key would try them: another connection's users
and connections must look exactly like ones that do not exist; a missing permission is a
403 that changes nothing; an expired key is a 401."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.api.conftest import new_key
from tests.api.support import ApiClient
from tests.factories import make_connection, make_link
from whoopadmin.api.models import ApiKey
from whoopadmin.audit import AuditEvent, utcnow
from whoopadmin.connect.models import ConnectSession, Link
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection

# Headers that differ between any two answers, whatever they say.
VOLATILE = {"Date", "Content-Length", "X-Request-Id"}


@pytest.fixture
def world(app):
    """Two live connections, a link on each, and a key scoped to ``mine`` only."""
    with app.app_context():
        mine = make_connection(environment="mine", hostname="mine.acme.test", live_at=utcnow())
        other = make_connection(environment="other", hostname="other.acme.test", live_at=utcnow())
        my_link = make_link(mine, whoop_user_id=1, reference_id="shared-ref")
        their_link = make_link(other, whoop_user_id=2, reference_id="shared-ref")
        ids = {"mine": mine.id, "other": other.id}
        uids = {"mine": my_link.uid, "other": their_link.uid}
    key = new_key(app, "narrow", connection_ids=[ids["mine"]])
    return app, ApiClient(app, key), ids, uids


def same_answer(first, second) -> None:
    """Fail unless two responses are indistinguishable: status, body and headers."""
    assert first.status_code == second.status_code
    assert first.get_data() == second.get_data()
    strip = lambda r: {k: v for k, v in r.headers.items() if k not in VOLATILE}  # noqa: E731
    assert strip(first) == strip(second)


def link_state(app, uid: str) -> tuple:
    with app.app_context():
        link = db.session.scalar(sa.select(Link).where(Link.uid == uid))
        return link.status, link.access_token, link.refresh_token, link.token_version


def test_another_connections_user_looks_like_no_user(world):
    app, api, _, uids = world
    before = link_state(app, uids["other"])
    for method, suffix, kwargs in (
        ("GET", "", {}),
        ("DELETE", "", {}),
        ("POST", "/backfill", {"json": {}}),
        ("POST", "/backfill", {"json": {"start": "2026-01-01T00:00:00Z"}}),
    ):
        theirs = api.open(method, f"/users/{uids['other']}{suffix}", **kwargs)
        nobody = api.open(method, f"/users/u_doesnotexist{suffix}", **kwargs)
        assert theirs.status_code == 404, (method, suffix, theirs.json)
        assert theirs.json == {"error": "not_found", "message": "No such user."}
        same_answer(theirs, nobody)
    # Nothing happened to the other connection's link, and nothing was logged.
    assert link_state(app, uids["other"]) == before
    with app.app_context():
        assert db.session.scalars(sa.select(AuditEvent.action)).all() == ["api_key.create"]


def test_another_connection_looks_like_no_connection(world):
    app, api, ids, _ = world
    body = {"reference_id": "someone"}
    answers = [
        api.post("/connect-sessions", json={**body, "connection": name})
        for name in ("other", ids["other"], "no-such-env", 999_999, 2**31 - 1)
    ]
    for answer in answers:
        assert answer.status_code == 403
        assert answer.json["error"] == "forbidden" and answer.json["field"] == "connection"
        same_answer(answer, answers[0])
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(ConnectSession.id))) == 0
    # The key's own connection works, by name or id.
    for name in ("mine", ids["mine"]):
        assert api.post("/connect-sessions", json={**body, "connection": name}).status_code == 201


def test_an_all_connections_key_gets_404_for_a_missing_connection(world):
    app, _, _, _ = world
    api = ApiClient(app, new_key(app, "wide"))
    answer = api.post("/connect-sessions", json={"connection": "nope", "reference_id": "r"})
    assert answer.status_code == 404 and answer.json["error"] == "connection_not_found"
    answer = api.post("/connect-sessions", json={"connection": "other", "reference_id": "r"})
    assert answer.status_code == 201


def test_lists_hold_only_the_keys_connections(world):
    app, api, ids, uids = world
    response = api.get("/users", query_string={"reference_id": "shared-ref"})
    assert [u["user_id"] for u in response.json["users"]] == [uids["mine"]]
    # A reference id that only exists on the other connection is an empty list, as for one
    # that exists nowhere.
    with app.app_context():
        other = db.session.get(Connection, ids["other"])
        make_link(other, whoop_user_id=3, reference_id="only-theirs")
    theirs = api.get("/users", query_string={"reference_id": "only-theirs"})
    nobody = api.get("/users", query_string={"reference_id": "no-one-at-all"})
    assert theirs.json == nobody.json == {"users": []}


@pytest.mark.parametrize(
    ("granted", "method", "path", "needed"),
    [
        (["read", "write"], "POST", "/connect-sessions", "connect"),
        (["connect", "write"], "GET", "/users?reference_id=shared-ref", "read"),
        (["connect", "write"], "GET", "/users/{uid}", "read"),
        (["connect", "read"], "DELETE", "/users/{uid}", "write"),
        (["connect", "read"], "POST", "/users/{uid}/backfill", "write"),
    ],
)
def test_a_missing_permission_is_403_and_changes_nothing(world, granted, method, path, needed):
    app, _, ids, uids = world
    api = ApiClient(app, new_key(app, "partial", connection_ids=[ids["mine"]], permissions=granted))
    before = link_state(app, uids["mine"])
    kwargs = {"json": {"connection": "mine", "reference_id": "r"}} if method == "POST" else {}
    response = api.open(method, path.format(uid=uids["mine"]), **kwargs)
    assert response.status_code == 403
    assert response.json == {
        "error": "forbidden",
        "message": f"This API key lacks the '{needed}' permission.",
    }
    assert link_state(app, uids["mine"]) == before
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(ConnectSession.id))) == 0
        assert "link.disconnect" not in db.session.scalars(sa.select(AuditEvent.action)).all()


def test_the_permission_is_checked_before_the_input(world):
    """A key without ``write`` learns nothing from a backfill body, good or bad."""
    app, _, ids, uids = world
    api = ApiClient(app, new_key(app, "reader", permissions=["read"]))
    bad = api.post(f"/users/{uids['mine']}/backfill", json={"start": "nonsense"})
    good = api.post(f"/users/{uids['other']}/backfill", json={})
    assert bad.status_code == good.status_code == 403
    same_answer(bad, good)


def expire(app, name: str, when) -> None:
    with app.app_context():
        row = db.session.scalar(sa.select(ApiKey).where(ApiKey.name == name))
        row.expires_at = when
        db.session.commit()


def test_an_expired_key_gets_401(world):
    app, _, _, uids = world
    key = new_key(app, "short-lived", expires_at=utcnow() + timedelta(hours=1))
    api = ApiClient(app, key)
    assert api.get(f"/users/{uids['mine']}").status_code == 200
    expire(app, "short-lived", utcnow() - timedelta(seconds=1))
    with app.app_context():
        used = db.session.scalar(sa.select(ApiKey.last_used_at).where(ApiKey.name == "short-lived"))
    for method, path in (("GET", f"/users/{uids['mine']}"), ("DELETE", f"/users/{uids['mine']}")):
        response = api.open(method, path)
        assert response.status_code == 401
        assert response.json["error"] == "unauthorized"
        assert "expired" in response.json["message"]
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="whoopadmin"'
    assert link_state(app, uids["mine"])[0] == "active"
    with app.app_context():
        row = db.session.scalar(sa.select(ApiKey).where(ApiKey.name == "short-lived"))
        assert row.last_used_at == used and row.status == "expired" and not row.active


def test_a_revoked_expired_key_says_nothing_about_expiry(world):
    app, _, _, uids = world
    key = new_key(app, "gone")
    expire(app, "gone", utcnow() - timedelta(days=1))
    with app.app_context():
        row = db.session.scalar(sa.select(ApiKey).where(ApiKey.name == "gone"))
        row.revoked_at = utcnow()
        db.session.commit()
    response = ApiClient(app, key).get(f"/users/{uids['mine']}")
    assert response.status_code == 401 and "expired" not in response.json["message"]


def test_key_helpers(world):
    app, _, ids, _ = world
    with app.app_context():
        narrow = db.session.scalar(sa.select(ApiKey).where(ApiKey.name == "narrow"))
        assert narrow.can_access(ids["mine"]) and not narrow.can_access(ids["other"])
        assert narrow.allows("read") and narrow.allows("write") and narrow.allows("connect")
        with pytest.raises(ValueError):
            narrow.allows("admin")
        found = db.session.scalars(
            sa.select(Link.connection_id).where(narrow.connection_filter(Link.connection_id))
        ).all()
        assert found == [ids["mine"]]
        assert narrow.audit_actor == f"api-key:narrow ({narrow.prefix})"
