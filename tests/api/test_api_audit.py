"""Every state-changing API call is in the audit log, with the key as the actor; the same
services audit the staff pages' actions once."""

from __future__ import annotations

import re

import sqlalchemy as sa

from tests.api.conftest import new_key
from tests.api.support import ApiClient
from tests.factories import make_connection, make_link
from tests.helpers import csrf_from
from whoopadmin.api.models import ApiKey
from whoopadmin.audit import AuditEvent, utcnow
from whoopadmin.extensions import db


def api_events(app) -> list[AuditEvent]:
    with app.app_context():
        rows = db.session.scalars(
            sa.select(AuditEvent)
            .where(AuditEvent.actor.startswith("api-key:"))
            .order_by(AuditEvent.id)
        ).all()
        for row in rows:
            db.session.expunge(row)
        return rows


def test_api_actions_are_audited_with_the_key_as_actor(app, operator_client):
    with app.app_context():
        connection = make_connection(live_at=utcnow())
        uid = make_link(connection, whoop_user_id=3, reference_id="user-3").uid
        connection_id = connection.id
    key = new_key(app, "backend prod")
    with app.app_context():
        row = db.session.scalar(sa.select(ApiKey).where(ApiKey.name == "backend prod"))
        key_id, label = row.id, f"api-key:backend prod ({row.prefix})"
    api = ApiClient(app, key)

    created = api.post("/connect-sessions", json={"connection": "production", "reference_id": "u9"})
    assert created.status_code == 201
    backfill = api.post(f"/users/{uid}/backfill", json={"start": "2026-01-01T00:00:00Z"})
    assert backfill.status_code == 202
    assert api.delete(f"/users/{uid}").status_code == 200
    # Reads and refused calls change nothing and log nothing.
    api.get(f"/users/{uid}")
    api.get("/users?reference_id=user-3")
    api.post("/connect-sessions", json={"connection": "nope", "reference_id": "u9"})
    api.delete("/users/u_nobody")
    api.delete(f"/users/{uid}")  # already revoked: a no-op

    events = api_events(app)
    assert [e.action for e in events] == [
        "connect_session.create",
        "link.backfill",
        "link.disconnect",
    ]
    for event in events:
        assert event.actor == label and event.actor_id is None
        assert event.details["api_key_id"] == key_id
    session_event, backfill, disconnect = events
    assert session_event.target_type == "connections"
    assert session_event.target_id == str(connection_id)
    assert session_event.details["session"] == created.json["session_id"]
    assert session_event.details["reference_id"] == "u9"
    assert backfill.target_type == disconnect.target_type == "links"
    assert backfill.details["start"] == "2026-01-01T00:00:00+00:00"
    assert "whoop_revoke_error" in disconnect.details
    # The key itself never lands in the log.
    assert not any(key in str(e.details) or key in e.actor for e in events)

    # Operators find the key's actions on the audit page, by the key's name.
    page = operator_client.get("/audit", query_string={"actor": label}).get_data(as_text=True)
    assert page.count('data-action="link.disconnect"') == 1
    assert 'data-action="connect_session.create"' in page


def test_staff_connect_links_are_audited_once(app, wizard, configured_app):
    """The connect-links page now relies on the service's audit row: exactly one per link."""
    page = wizard.client.get("/setup/production/connect-links").get_data(as_text=True)
    response = wizard.client.post(
        "/setup/production/connect-links",
        data={"reference_id": "staff-made", "expires_in": "60", "csrf_token": csrf_from(page)},
    )
    assert response.status_code == 200, response.data
    with app.app_context():
        events = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "connect_session.create")
        ).all()
        assert len(events) == 1
        assert events[0].actor == "operator@example.com" and events[0].actor_id is not None
        assert events[0].details["reference_id"] == "staff-made"
        assert re.fullmatch(r"cs_[0-9a-f]{24}", events[0].details["session"])
