"""The API key pages: operators only, CSRF on every POST, keys shown once and stored hashed."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.api.support import ApiClient, count, rows_containing
from tests.factories import make_user
from tests.helpers import csrf_from
from whoopadmin.api.models import ApiKey
from whoopadmin.audit import AuditEvent, utcnow
from whoopadmin.extensions import db

KEY_RE = re.compile(
    r'data-testid="new-key".*?<code class="copyable">(wa_[A-Za-z0-9_-]+)</code>', re.S
)


ALL = {"scope": "all", "permissions": ["connect", "read", "write"]}


def create(client, name: str, **fields):
    """Post the new-key form: by default all connections and every permission."""
    token = csrf_from(client.get("/api-keys").get_data(as_text=True))
    return client.post("/api-keys", data={**ALL, "name": name, "csrf_token": token, **fields})


def shown_key(response) -> str:
    match = KEY_RE.search(response.get_data(as_text=True))
    assert match, "the new key is not on the page"
    return match.group(1)


def only_key(app) -> ApiKey:
    with app.app_context():
        keys = list(db.session.scalars(sa.select(ApiKey)))
        assert len(keys) == 1
        db.session.expunge(keys[0])
        return keys[0]


def revoke(client, key_id: int):
    """Follow the Revoke link to the confirmation page and confirm there."""
    page = client.get(f"/api-keys/{key_id}/revoke")
    if page.status_code != 200:
        return page
    token = csrf_from(page.get_data(as_text=True))
    return client.post(f"/api-keys/{key_id}/revoke", data={"csrf_token": token, "confirm": "yes"})


def test_create_shows_the_key_once_and_stores_only_its_hash(app, operator_client):
    response = create(operator_client, "backend-prod")
    assert response.status_code == 200
    key = shown_key(response)
    # No browser or proxy cache may keep the page that shows the key.
    assert "no-store" in response.headers.get("Cache-Control", "")
    assert len(key) > 40

    row = only_key(app)
    assert row.name == "backend-prod" and row.active and row.last_used_at is None
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key.startswith(row.prefix) and len(row.prefix) < len(key) // 2
    with app.app_context():
        assert rows_containing(key) == []
        # Nor any long piece of it (say, the key minus its first character).
        assert rows_containing(key[1:]) == []
        event = db.session.scalar(
            sa.select(AuditEvent).where(AuditEvent.action == "api_key.create")
        )
        assert event.target_id == str(row.id) and key not in str(event.details)

    again = operator_client.get("/api-keys").get_data(as_text=True)
    assert key not in again and 'data-testid="new-key"' not in again
    assert "backend-prod" in again and f"{row.prefix}…" in again and "never" in again

    # The key shown is the one that works.
    assert ApiClient(app, key).get("/users?reference_id=nobody").status_code == 200


def test_two_keys_differ(app, operator_client):
    first, second = shown_key(create(operator_client, "a")), shown_key(create(operator_client, "b"))
    assert first != second
    with app.app_context():
        assert count(ApiKey) == 2


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "\xa0\t",
        "x" * 101,
        "bad\x00name",
        "tab\tinside",
        "new\nline",
        "bell\x07",
        "line\u2028sep",
        "zero\u200bwidth",
        "bidi\u202eoverride",
    ],
    ids=["empty", "spaces", "nbsp-tab", "101", "nul", "tab", "lf", "bell", "u2028", "zwsp", "rlo"],
)
def test_bad_names_are_refused(app, operator_client, name):
    response = create(operator_client, name)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    # A NUL may be refused before the view, by the app-wide guard on form input.
    assert "Give the key a name of 1-100 printable characters." in page or (
        "\x00" in name and "NUL character" in page
    )
    assert 'data-testid="new-key"' not in page
    with app.app_context():
        assert count(ApiKey) == 0
        actions = set(db.session.scalars(sa.select(AuditEvent.action)))
    assert "api_key.create" not in actions


def test_name_limits(app, operator_client):
    assert create(operator_client, "x" * 100).status_code == 200
    assert create(operator_client, "  padded name  ").status_code == 200
    with app.app_context():
        names = set(db.session.scalars(sa.select(ApiKey.name)))
    assert names == {"x" * 100, "padded name"}


def test_missing_name_field(app, operator_client):
    token = csrf_from(operator_client.get("/api-keys").get_data(as_text=True))
    assert operator_client.post("/api-keys", data={"csrf_token": token}).status_code == 400
    with app.app_context():
        assert count(ApiKey) == 0


def test_name_is_escaped_on_the_page(operator_client):
    create(operator_client, "<script>alert(1)</script>")
    page = operator_client.get("/api-keys").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_create_needs_csrf(app, operator_client):
    assert operator_client.post("/api-keys", data={"name": "x"}).status_code == 400
    bad = operator_client.post("/api-keys", data={"name": "x", "csrf_token": "forged"})
    assert bad.status_code == 400
    with app.app_context():
        assert count(ApiKey) == 0


def test_revoke_needs_csrf(app, operator_client):
    create(operator_client, "backend")
    row = only_key(app)
    assert operator_client.post(f"/api-keys/{row.id}/revoke").status_code == 400
    assert only_key(app).active


def test_revoke(app, operator_client):
    key = shown_key(create(operator_client, "backend"))
    api = ApiClient(app, key)
    assert api.get("/users?reference_id=u1").status_code == 200
    row = only_key(app)

    response = revoke(operator_client, row.id)
    assert response.status_code == 303
    assert response.headers["Location"] == "/api-keys"
    page = operator_client.get("/api-keys").get_data(as_text=True)
    assert f"Key {row.prefix}… revoked." in page and "revoked" in page
    assert f"/api-keys/{row.id}/revoke" not in page  # no button for a revoked key
    assert "Revoke…" not in page

    revoked = only_key(app)
    assert revoked.revoked_at is not None and not revoked.active
    with app.app_context():
        event = db.session.scalar(
            sa.select(AuditEvent).where(AuditEvent.action == "api_key.revoke")
        )
        assert event is not None and event.actor == "operator@example.com"
        assert event.target_type == "api_keys" and event.target_id == str(row.id)

    # At once: the very next call is refused.
    refused = api.get("/users?reference_id=u1")
    assert refused.status_code == 401
    assert refused.json["error"] == "unauthorized"

    # Revoking again changes nothing and audits nothing.
    assert revoke(operator_client, row.id).status_code == 303
    assert only_key(app).revoked_at == revoked.revoked_at
    with app.app_context():
        actions = list(db.session.scalars(sa.select(AuditEvent.action)))
    assert actions.count("api_key.revoke") == 1


def test_revoke_unknown_key(operator_client):
    token = csrf_from(operator_client.get("/api-keys").get_data(as_text=True))
    response = operator_client.post(
        "/api-keys/999/revoke", data={"csrf_token": token, "confirm": "yes"}
    )
    assert response.status_code == 404
    assert operator_client.get("/api-keys/999/revoke").status_code == 404
    assert operator_client.put("/api-keys/1/revoke").status_code == 405


def test_last_used_is_recorded(app, operator_client):
    key = shown_key(create(operator_client, "backend"))
    assert only_key(app).last_used_at is None
    before = utcnow()
    ApiClient(app, key).get("/users?reference_id=u1")
    first = only_key(app).last_used_at
    assert first is not None and before - timedelta(seconds=1) <= first <= utcnow()
    assert first.strftime("%Y-%m-%d %H:%M") in operator_client.get("/api-keys").get_data(
        as_text=True
    )

    # An old last-used time moves forward on the next call.
    with app.app_context():
        row = db.session.get(ApiKey, only_key(app).id)
        row.last_used_at = utcnow() - timedelta(hours=3)
        db.session.commit()
    ApiClient(app, key).get("/users?reference_id=u1")
    assert only_key(app).last_used_at >= before

    # A refused call (unknown key) touches no key.
    stamp = only_key(app).last_used_at
    ApiClient(app, key + "x").get("/users?reference_id=u1")
    assert only_key(app).last_used_at == stamp


def test_support_staff_get_403(app, client, auth):
    with app.app_context():
        make_user("support")
        make_user("operator")
    auth.login("operator@example.com", "operator-password")
    create(client, "backend")
    row = only_key(app)
    auth.logout()

    auth.login("support@example.com", "support-password")
    assert client.get("/api-keys").status_code == 403
    token = csrf_from(client.get("/").get_data(as_text=True))
    assert client.post("/api-keys", data={"name": "x", "csrf_token": token}).status_code == 403
    forbidden = client.post(
        f"/api-keys/{row.id}/revoke", data={"csrf_token": token, "confirm": "yes"}
    )
    assert forbidden.status_code == 403
    assert client.get(f"/api-keys/{row.id}/revoke").status_code == 403
    assert only_key(app).active
    with app.app_context():
        assert count(ApiKey) == 1


def test_signed_out_visitors_are_sent_to_login(app, client):
    response = client.get("/api-keys")
    assert response.headers["Location"].startswith("/login")
    assert client.post("/api-keys", data={"name": "x"}).status_code in (302, 400)
    with app.app_context():
        assert count(ApiKey) == 0
