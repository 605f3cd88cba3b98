"""Ping mode: a destination can take pings — event id, type, time, the user's ids and the
record's ids, no health data — signed like full events; other destinations of the same
connection keep getting full events."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from tests.conftest import run_jobs
from tests.destinations.conftest import Receiver
from tests.destinations.support import deliveries, standard_verify
from tests.factories import make_connection, make_link
from tests.helpers import csrf_from
from whoopadmin.audit import AuditEvent
from whoopadmin.destinations import service
from whoopadmin.destinations.models import Destination
from whoopadmin.destinations.signing import verify
from whoopadmin.extensions import db

RECOVERY = {
    "cycle_id": 93845,
    "sleep_id": "ecfc6a15-4661-442f-a9a4-f160dd7afae8",
    "user_id": 10001,
    "created_at": "2022-04-24T11:25:44.774Z",
    "updated_at": "2022-04-24T14:25:44.774Z",
    "score_state": "SCORED",
    "score": {"recovery_score": 44, "resting_heart_rate": 64, "hrv_rmssd_milli": 31.8},
}


def post(client, path, data=None, page=None):
    token = csrf_from(client.get(page or path).get_data(as_text=True))
    return client.post(path, data={**(data or {}), "csrf_token": token})


@pytest.fixture
def full_receiver():
    with Receiver() as server:
        yield server


def test_pings_carry_ids_only_and_full_destinations_keep_full_events(
    private_ok, operator_client, receiver, full_receiver
):
    app = private_ok
    with app.app_context():
        conn = make_connection()
        link = make_link(conn, whoop_user_id=10001, reference_id="user-42")
        events = ["auth.success", "recovery"]
        ping, ping_secret = service.create_destination("test", conn, receiver.url, events)
        _, full_secret = service.create_destination("test", conn, full_receiver.url, events)
        ping_id, link_uid, conn_id, link_id = ping.id, link.uid, conn.id, link.id

    response = post(
        operator_client,
        f"/destinations/{ping_id}/mode",
        {"mode": "ping"},
        page=f"/destinations/{ping_id}",
    )
    assert response.headers["Location"] == f"/destinations/{ping_id}"
    assert "sent as pings" in operator_client.get(f"/destinations/{ping_id}").get_data(True)
    assert " · pings" in operator_client.get("/destinations").get_data(as_text=True)

    with app.app_context():
        link = db.session.get(type(link), link_id)
        service.emit_records(link, "recovery", [RECOVERY])
        service.emit(conn_id, "auth.success", {"scopes": "read:recovery"}, link=link)
    run_jobs(app, ("deliveries",))

    pings = [standard_verify(ping_secret, r) for r in receiver.requests]
    fulls = [standard_verify(full_secret, r) for r in full_receiver.requests]
    for r in receiver.requests:  # signed the same way as full events, in both schemes
        verify(ping_secret, r["headers"]["Whoopadmin-Signature"], r["body"])
    data_ping, life_ping = pings
    data_full, life_full = fulls
    assert set(data_ping) == {
        "id",
        "provider",
        "type",
        "created_at",
        "environment",
        "user",
        "data",
        "mode",
    }
    assert data_ping["mode"] == "ping" and data_ping["type"] == "recovery"
    assert data_ping["user"] == {
        "provider": "whoop",
        "user_id": link_uid,
        "reference_id": "user-42",
    }
    # What the backend needs to read the record through the API: its type and WHOOP id.
    assert data_ping["data"] == {
        "record_type": "recovery",
        "id": "ecfc6a15-4661-442f-a9a4-f160dd7afae8",
        "whoop_id": "ecfc6a15-4661-442f-a9a4-f160dd7afae8",
    }
    assert life_ping["data"] is None and life_ping["type"] == "auth.success"
    # The same events, in full, to the other destination: same ids and times.
    assert (data_full["id"], data_full["created_at"]) == (data_ping["id"], data_ping["created_at"])
    assert life_full["id"] == life_ping["id"]
    assert "mode" not in data_full and data_full["user"]["whoop_user_id"] == 10001
    assert data_full["user"]["provider_user_id"] == "10001"
    names = {i["name"] for i in data_full["data"]["indicators"]}
    assert {"recovery_score", "hrv_rmssd"} <= names
    # No health data anywhere in a ping's bytes.
    for request in receiver.requests:
        body = request["body"].decode()
        needles = ("indicators", "score", ":44", "31.8", "hrv", "whoop_user_id", "scopes", "start")
        for needle in needles:
            assert needle not in body, needle
    with app.app_context():
        (entry,) = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "destination.mode")
        ).all()
        assert entry.details == {"old": "full", "new": "ping"}


def test_switching_modes_applies_to_new_events_and_resends_keep_their_body(
    private_ok, operator_client, receiver
):
    app = private_ok
    with app.app_context():
        conn = make_connection()
        link = make_link(conn)
        destination, _ = service.create_destination("test", conn, receiver.url, ["auth.success"])
        dest_id, conn_id, link_id = destination.id, conn.id, link.id

    def emit():
        with app.app_context():
            service.emit(
                conn_id, "auth.success", {"scopes": "x"}, link=db.session.get(type(link), link_id)
            )
        run_jobs(app, ("deliveries",))

    emit()
    post(operator_client, f"/destinations/{dest_id}/mode", {"mode": "ping"}, page="/destinations")
    emit()
    post(operator_client, f"/destinations/{dest_id}/mode", {"mode": "full"}, page="/destinations")
    emit()
    modes = [json.loads(r["body"]).get("mode", "full") for r in receiver.requests]
    assert modes == ["full", "ping", "full"]
    first = deliveries(app)[0]
    with app.app_context():
        service.resend("test", db.session.get(type(first), first.id))
    run_jobs(app, ("deliveries",))
    assert receiver.requests[-1]["body"] == receiver.requests[0]["body"]


@pytest.mark.parametrize("mode", ["", "pong", "FULL", "ping ", "x" * 300, "<script>"])
def test_bad_modes_are_refused_and_nothing_changes(private_ok, operator_client, receiver, mode):
    app = private_ok
    with app.app_context():
        conn = make_connection()
        destination, _ = service.create_destination("test", conn, receiver.url, ["deauth"])
        dest_id = destination.id
    response = post(
        operator_client, f"/destinations/{dest_id}/mode", {"mode": mode}, page="/destinations"
    )
    assert response.headers["Location"] == f"/destinations/{dest_id}"
    page = operator_client.get(f"/destinations/{dest_id}").get_data(as_text=True)
    assert "Choose full events or pings." in page
    assert "<script>" not in page.split("Delivery log")[0].split("</nav>")[1]
    with app.app_context():
        assert db.session.get(Destination, dest_id).payload_mode == "full"
        assert not db.session.scalar(
            sa.select(AuditEvent).where(AuditEvent.action == "destination.mode")
        )
    # Choosing the mode it already has changes nothing either.
    post(operator_client, f"/destinations/{dest_id}/mode", {"mode": "full"}, page="/destinations")
    assert "Nothing changed." in operator_client.get(f"/destinations/{dest_id}").get_data(True)
