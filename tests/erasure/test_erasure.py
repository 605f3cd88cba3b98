"""Erasure: a year of a user's data erased through the API leaves nothing that names them;
the grace period stops syncs and deliveries and can be undone; bad input is refused."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.api.conftest import new_key
from tests.api.support import ApiClient
from tests.factories import make_connection, make_link
from whoopadmin.audit import AuditEvent, utcnow
from whoopadmin.connect.models import ConnectSession, Link
from whoopadmin.destinations.models import Delivery, Destination
from whoopadmin.erasure import service
from whoopadmin.erasure.models import Erasure
from whoopadmin.extensions import db
from whoopadmin.sync import service as sync_service
from whoopadmin.sync.models import Indicator, WhoopRecord
from whoopadmin.webhooks.models import WebhookEvent

SCOPE = (
    "offline read:profile read:recovery read:sleep read:workout read:cycles read:body_measurement"
)


def synced_member(app, sandbox, reference_id: str, days: int = 365) -> dict:
    """A link with real sandbox tokens and ``days`` of data synced over HTTP."""
    member = sandbox.state.create_member(days=days)
    tokens = sandbox.state.grant_tokens(app.whoop_app.client_id, member.user_id, SCOPE)
    with app.app_context():
        link = make_link(whoop_user_id=member.user_id, reference_id=reference_id, scopes=SCOPE)
        link.access_token = tokens["access_token"]
        link.refresh_token = tokens["refresh_token"]
        link.access_expires_at = utcnow() + timedelta(hours=1)
        link.email = member.email
        link.first_name = member.first_name
        link.last_name = member.last_name
        db.session.commit()
        counts = sync_service.sync_window(link.id, utcnow() - timedelta(days=days), None)
        whoop_ids = list(
            db.session.scalars(
                sa.select(WhoopRecord.whoop_id).where(WhoopRecord.link_id == link.id)
            )
        )
        return {
            "id": link.id,
            "uid": link.uid,
            "reference_id": reference_id,
            "whoop_user_id": member.user_id,
            "email": member.email,
            "whoop_ids": whoop_ids,
            "counts": counts,
        }


def add_destination(app) -> None:
    """A destination that wants every event: syncs then leave deliveries with payloads."""
    from whoopadmin.destinations.models import EVENT_TYPES

    with app.app_context():
        connection_id = db.session.scalar(sa.select(Link.connection_id).limit(1)) or 1
        destination = Destination(
            connection_id=connection_id, url="https://hooks.example.test/", events=list(EVENT_TYPES)
        )
        destination.signing_secret = "whsec_dGVzdC1zZWNyZXQtdGVzdC1zZWNyZXQtdGVzdC0xMg=="
        db.session.add(destination)
        db.session.commit()


def leftovers(user: dict) -> list[tuple[str, str]]:
    """Every (table, column) of every table whose value still names the user."""
    texts = [user["uid"], user["reference_id"], user["email"], *user["whoop_ids"]]
    number = re.compile(rf"(?<!\d){user['whoop_user_id']}(?!\d)")
    found = []
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            link_fks = [
                c.name
                for c in table.columns
                if any(f.column.table.name == "links" for f in c.foreign_keys)
            ]
            for row in conn.execute(sa.select(table)).mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    if column in link_fks and value == user["id"]:
                        found.append((table.name, column))
                    if isinstance(value, int) and value == user["whoop_user_id"]:
                        found.append((table.name, column))
                    if isinstance(value, str | dict | list):
                        text = value if isinstance(value, str) else repr(value)
                        if any(t and t in text for t in texts) or number.search(text):
                            found.append((table.name, column))
    return sorted(set(found))


@pytest.fixture
def api(configured_app):
    return ApiClient(configured_app, new_key(configured_app))


def test_erasing_a_year_leaves_nothing_that_names_the_user(
    configured_app, sandbox, api, new_session
):
    app = configured_app
    add_destination(app)
    user = synced_member(app, sandbox, "erase-me-7f3c")
    other = synced_member(app, sandbox, "keep-me-91aa", days=30)
    assert len(user["whoop_ids"]) > 365 * 3  # a year: cycles, sleeps, recoveries, workouts
    new_session(reference_id=user["reference_id"])  # an unused connect session, audited
    with app.app_context():
        db.session.add(
            WebhookEvent(
                connection_id=1,
                link_id=None,
                trace_id="trace-erase-1",
                type="sleep.updated",
                whoop_user_id=user["whoop_user_id"],
                status="ignored",
                body={"user_id": user["whoop_user_id"], "id": user["whoop_ids"][0]},
            )
        )
        db.session.commit()
        assert db.session.scalar(
            sa.select(sa.func.count(Delivery.id)).where(Delivery.link_id == user["id"])
        )
        assert leftovers(user)  # the scan finds the user before the erasure
        kept = {
            model.__tablename__: db.session.scalar(
                sa.select(sa.func.count()).select_from(model).where(model.link_id == other["id"])
            )
            for model in (WhoopRecord, Indicator, Delivery)
        }

    response = api.delete(f"/users/{user['uid']}?erase=true&grace_days=0")
    assert response.status_code == 202, response.json
    body = response.json
    assert body["status"] == "done" and body["user_id"] is None
    assert body["counts"]["raw_objects"] == len(user["whoop_ids"])
    assert body["counts"]["indicators"] > body["counts"]["raw_objects"]
    assert body["counts"]["deliveries"] > 0 and body["counts"]["links"] == 1
    assert body["counts"]["connect_sessions"] == 1 and body["counts"]["webhook_events"] == 1

    with app.app_context():
        assert leftovers(user) == []
        # The other user is untouched.
        for model in (WhoopRecord, Indicator, Delivery):
            count = db.session.scalar(
                sa.select(sa.func.count()).select_from(model).where(model.link_id == other["id"])
            )
            assert count == kept[model.__tablename__], model
        # The receipt: in the audit log and delivered as user.erased, naming no one.
        receipt = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "link.erased"))
        assert receipt.details["user_hash"] == service.user_hash(user["uid"])
        assert receipt.details["counts"] == body["counts"]
        assert receipt.details["requested_by"].startswith("api-key:")
        erased = db.session.scalar(sa.select(Delivery).where(Delivery.event_type == "user.erased"))
        assert erased is not None and erased.link_id is None
        assert '"erasure_id":"' + body["erasure_id"] + '"' in erased.payload
    # The user is gone: 410 for the API, for a second erase and for an undo.
    assert api.get(f"/users/{user['uid']}").status_code == 404
    assert api.delete(f"/users/{user['uid']}?erase=true").status_code == 410
    assert api.delete(f"/users/{user['uid']}/erasure").status_code == 410


def test_grace_period_stops_everything_and_can_be_undone(configured_app, sandbox, api):
    app = configured_app
    add_destination(app)
    user = synced_member(app, sandbox, "undo-me", days=5)
    response = api.delete(f"/users/{user['uid']}?erase=true")
    assert response.status_code == 202 and response.json["status"] == "scheduled"
    due = response.json["due_at"]
    assert api.get(f"/users/{user['uid']}").json["status"] == "erasing"
    # A second request while one is scheduled: 409.
    again = api.delete(f"/users/{user['uid']}?erase=true")
    assert again.status_code == 409 and again.json["error"] == "erasure_pending"
    with app.app_context():
        link = db.session.get(Link, user["id"])
        with pytest.raises(sync_service.LinkInactive):
            sync_service.sync_window(link.id, utcnow() - timedelta(days=2))
        from whoopadmin.destinations.service import emit
        from whoopadmin.sync.jobs import refresh_link

        assert emit(link.connection_id, "deauth", {"reason": "x"}, link=link) == 0
        assert refresh_link(link.id, "scheduled", force=True) == "inactive"
        # A delivery already pending for the user waits, unattempted.
        pending = db.session.scalar(
            sa.select(Delivery).where(Delivery.link_id == link.id, Delivery.status == "pending")
        )
        from whoopadmin.destinations.service import deliver

        assert deliver(pending.id).startswith("postponed")
        assert db.session.get(Delivery, pending.id).attempts == 0
        # Not due yet: the cron leaves it.
        assert service.erase_due() == 0
    # Undo: the link is active again and keeps its data.
    undone = api.delete(f"/users/{user['uid']}/erasure")
    assert undone.status_code == 200 and undone.json["status"] == "cancelled"
    assert api.get(f"/users/{user['uid']}").json["status"] == "active"
    assert api.delete(f"/users/{user['uid']}/erasure").json["error"] == "not_scheduled"
    with app.app_context():
        assert service.erase_due(now=utcnow() + timedelta(days=30)) == 0
        assert db.session.scalar(
            sa.select(sa.func.count(WhoopRecord.id)).where(WhoopRecord.link_id == user["id"])
        ) == len(user["whoop_ids"])
    # Scheduled again, then the cron carries it out once due; undo is then too late.
    assert api.delete(f"/users/{user['uid']}?erase=true").status_code == 202
    with app.app_context():
        assert service.erase_due(now=utcnow() + timedelta(days=8)) == 1
        erasure = db.session.scalar(sa.select(Erasure).where(Erasure.status == "done"))
        assert erasure.link_id is None and erasure.whoop_revoke == "revoked"
        assert db.session.get(Link, user["id"]) is None
    assert api.delete(f"/users/{user['uid']}/erasure").status_code == 410
    assert due  # the first request said when it would take effect


def test_bad_input_and_scope(configured_app, api):
    app = configured_app
    with app.app_context():
        uid = make_link(whoop_user_id=4242, reference_id="scoped").uid
        other = make_connection(environment="other", hostname="other.acme.test", client_id="c2")
        other_id = other.id
    for query in (
        "erase=maybe",
        "erase=true&grace_days=-1",
        "erase=true&grace_days=abc",
        "erase=true&grace_days=400",
        "erase=true&grace_days=91",
        "erase=true&grace_days=+5",
        "erase=1",
        "erase=TRUE",
    ):
        response = api.delete(f"/users/{uid}?{query}")
        assert response.status_code == 400, (query, response.json)
    with app.app_context():
        assert db.session.scalar(sa.select(Link.status).where(Link.uid == uid)) == "active"
    # A key of another connection does not see the user; a read-only key may not erase.
    scoped = ApiClient(app, new_key(app, "other", connection_ids=[other_id]))
    assert scoped.delete(f"/users/{uid}?erase=true").status_code == 404
    assert scoped.delete(f"/users/{uid}/erasure").status_code == 404
    reader = ApiClient(app, new_key(app, "reader", permissions=["read"]))
    assert reader.delete(f"/users/{uid}?erase=true").status_code == 403
    assert reader.delete(f"/users/{uid}/erasure").status_code == 403
    assert api.get(f"/users/{uid}/erasure").json["error"] == "no_erasure"
    # erase=false is a plain disconnect.
    response = api.delete(f"/users/{uid}?erase=false")
    assert response.status_code == 200 and response.json["status"] == "revoked"
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Erasure.id))) == 0
        assert db.session.scalar(sa.select(sa.func.count(ConnectSession.id))) == 0
