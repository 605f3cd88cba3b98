"""``GET /api/v1/users/<id>/status``, backfill progress (API and support page) and the
``historical.completed`` / ``historical.failed`` deliveries."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import sqlalchemy as sa
from openapi_schema_validator import OAS30Validator

from tests.conftest import run_jobs
from tests.data.conftest import subscribe, uid_of
from whoopadmin.api.openapi import document
from whoopadmin.connect.models import Link
from whoopadmin.data.models import Backfill
from whoopadmin.destinations.models import Delivery
from whoopadmin.extensions import db
from whoopadmin.jobs import get_queue
from whoopadmin.sync import jobs
from whoopadmin.sync.models import WhoopRecord


def _valid_event_data(event: dict) -> None:
    """The event's data is what the document's HistoricalEventData says."""
    schema = document()["components"]["schemas"]["HistoricalEventData"]
    OAS30Validator(schema).validate(event["data"])


def _deliveries(app, event_type):
    with app.app_context():
        return [
            json.loads(p)
            for p in db.session.scalars(
                sa.select(Delivery.payload)
                .where(Delivery.event_type == event_type)
                .order_by(Delivery.id)
            )
        ]


def _stored_counts(app):
    names = {"body_measurement": "body"}
    with app.app_context():
        rows = db.session.execute(
            sa.select(WhoopRecord.type, sa.func.count()).group_by(WhoopRecord.type)
        ).all()
    return {names.get(t, t): n for t, n in rows}


def test_status_before_during_and_after_a_backfill(
    configured_app, linked, api, sandbox, support_client
):
    """Queued after consent; running with growing progress while the sandbox answers
    slowly (the support page shows it too); completed with the counts stored."""
    subscribe(configured_app, ["historical.completed", "historical.failed"])
    uid = uid_of(configured_app, linked)
    status = api.get(f"/users/{uid}/status").json
    assert status["provider"] == "whoop" and status["user_id"] == uid
    backfill = status["backfill"]
    assert backfill["status"] == "queued" and backfill["trigger"] == "connect"
    assert backfill["progress"] == 0 and backfill["started_at"] is None
    assert {t["type"]: t["records"] for t in status["types"]} == dict.fromkeys(
        ("sleep", "recovery", "cycle", "workout", "body"), 0
    )
    page = support_client.get(f"/links/{uid}").get_data(as_text=True)
    assert "Backfill queued" in page

    # The worker runs here (RQ wants the main thread); a watcher polls as a backend would.
    seen, pages, done = [], [], threading.Event()

    def watch():
        while not done.is_set():
            backfill = api.get(f"/users/{uid}/status").json["backfill"]
            if backfill["status"] == "running":
                seen.append(backfill)
                if len(pages) < 2 and 0 < backfill["progress"] < 1:
                    pages.append(support_client.get(f"/links/{uid}").get_data(as_text=True))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    sandbox.state.set_faults({"slow_rate": 1.0, "slow_seconds": 0.4, "include_oauth": False})
    watcher.start()
    try:
        run_jobs(configured_app, ("backfill",))
    finally:
        done.set()
        watcher.join(30)
        sandbox.state.set_faults({"slow_rate": 0.0})
    assert seen, "never saw the backfill running"
    progress = [b["progress"] for b in seen]
    assert progress == sorted(progress) and any(0 < p < 1 for p in progress)
    assert {b["current_type"] for b in seen} >= {"cycle", "sleep"}
    assert pages and "Backfill running" in pages[0]
    assert '<progress class="w-100" value="' in pages[0]

    status = api.get(f"/users/{uid}/status").json
    backfill = status["backfill"]
    stored = _stored_counts(configured_app)
    assert backfill["status"] == "completed" and backfill["progress"] == 1
    assert backfill["counts"] == stored and backfill["error"] is None
    window = backfill["window"]
    assert window["start"] < window["end"]
    for row in status["types"]:
        assert row["records"] == stored[row["type"]]
        assert row["last_successful_sync"]["reason"] == "backfill"
        assert row["last_error"] is None
        if row["type"] != "body":
            assert row["newest_record_start"] is not None
    assert "Backfill running" not in support_client.get(f"/links/{uid}").get_data(as_text=True)

    (event,) = _deliveries(configured_app, "historical.completed")
    _valid_event_data(event)
    assert event["provider"] == "whoop" and event["user"]["user_id"] == uid
    assert event["data"]["counts"] == stored
    assert event["data"]["window"] == window and event["data"]["trigger"] == "connect"
    assert _deliveries(configured_app, "historical.failed") == []


def test_a_backfill_that_gives_up(configured_app, linked, api, sandbox):
    """WHOOP failing on the last try: the status shows the error, historical.failed is
    delivered with the reason; an earlier try that fails is only recorded (retried)."""
    subscribe(configured_app, ["historical.completed", "historical.failed"])
    uid = uid_of(configured_app, linked)
    with configured_app.app_context():
        get_queue("backfill").empty()  # the try below is the queued one, run by hand
    sandbox.state.set_faults({"error_rate": 1.0, "include_oauth": False})
    configured_app.config.update(WHOOP_MAX_RETRIES=0, WHOOP_BACKOFF=0.01)
    try:
        with configured_app.app_context():
            try:
                jobs.backfill_link(linked)  # outside RQ: this try is the last one
            except Exception as exc:
                assert getattr(exc, "code", None) == "server_error", exc
            else:
                raise AssertionError("the backfill did not fail")
    finally:
        sandbox.state.set_faults({"error_rate": 0.0})
    status = api.get(f"/users/{uid}/status").json
    backfill = status["backfill"]
    assert backfill["status"] == "failed" and backfill["error"].startswith("server_error")
    body = next(t for t in status["types"] if t["type"] == "body")
    assert body["last_error"]["error"] == "server_error"
    (event,) = _deliveries(configured_app, "historical.failed")
    _valid_event_data(event)
    assert event["data"]["reason"] == "server_error" and event["user"]["user_id"] == uid
    assert _deliveries(configured_app, "historical.completed") == []
    # The next (requested) backfill runs and completes: a new row, completed.
    response = api.post(f"/users/{uid}/backfill", json={})
    assert response.status_code == 202
    assert api.get(f"/users/{uid}/status").json["backfill"]["status"] == "queued"
    run_jobs(configured_app, ("backfill",))
    backfill = api.get(f"/users/{uid}/status").json["backfill"]
    assert backfill["status"] == "completed" and backfill["trigger"] == "request"
    assert len(_deliveries(configured_app, "historical.completed")) == 1
    with configured_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Backfill.id))) == 2


def test_a_link_that_cannot_be_synced_fails_its_backfill(configured_app, linked, api):
    subscribe(configured_app, ["historical.failed"])
    uid = uid_of(configured_app, linked)
    with configured_app.app_context():
        db.session.get(Link, linked).status = "revoked"
        db.session.commit()
    run_jobs(configured_app, ("backfill",))
    backfill = api.get(f"/users/{uid}/status").json["backfill"]
    assert backfill["status"] == "failed" and backfill["error"].startswith("link_inactive")
    (event,) = _deliveries(configured_app, "historical.failed")
    assert event["data"]["reason"] == "link_inactive"


def test_last_webhook_in_status(configured_app, backfilled, api, end_user, sandbox, member):
    assert api.get(f"/users/{backfilled}/status").json["last_webhook"] is None
    sleep = sandbox.state.data(member.user_id).sleeps.records[0]
    with configured_app.app_context():
        from whoopadmin.webhooks.models import WebhookEvent

        link = db.session.scalar(sa.select(Link).where(Link.uid == backfilled))
        db.session.add(
            WebhookEvent(
                connection_id=link.connection_id,
                link_id=link.id,
                trace_id="trace-1",
                type="sleep.updated",
                whoop_user_id=link.whoop_user_id,
                object_id=sleep["id"],
                status="processed",
            )
        )
        db.session.commit()
    hook = api.get(f"/users/{backfilled}/status").json["last_webhook"]
    assert hook["type"] == "sleep.updated" and hook["status"] == "processed"


def test_backfill_days_on_connect_sessions(configured_app, api, end_user, connection_id):
    bad = [0, 366, -1, "5", True, 2.5]
    for value in bad:
        response = api.post(
            "/connect-sessions",
            json={"connection": "production", "reference_id": "u1", "backfill_days": value},
        )
        assert response.status_code == 400, value
        assert response.json["field"] == "backfill_days"
    with configured_app.app_context():
        from whoopadmin.setup.models import Connection

        connection = db.session.get(Connection, connection_id)
        connection.allowed_origins = ["https://app.acme.test"]
        db.session.commit()
    response = api.post(
        "/connect-sessions",
        json={"connection": "production", "reference_id": "user-42", "backfill_days": 3},
    )
    assert response.status_code == 201, response.json
    token = response.json["url"].rsplit("/", 1)[-1]
    assert end_user.connect(token).status_code == 303
    with configured_app.app_context():
        row = db.session.scalar(sa.select(Backfill))
        assert row.window_end - row.window_start == timedelta(days=3)
    run_jobs(configured_app, ("backfill",))
    with configured_app.app_context():
        row = db.session.scalar(sa.select(Backfill))
        assert row.status == "completed"
        assert row.window_end - row.window_start == timedelta(days=3)
        oldest = db.session.scalar(
            sa.select(sa.func.min(WhoopRecord.start)).where(WhoopRecord.type == "workout")
        )
        assert oldest is None or oldest >= row.window_start - timedelta(days=1)
    # Without it, the connection's setting (30 days by default).
    response = api.post(
        "/connect-sessions", json={"connection": "production", "reference_id": "user-43"}
    )
    assert response.status_code == 201
