"""Failing endpoints: a destination whose attempts have all failed for days is disabled by the
cron, its new events are held (stored, not attempted), the operator learns of it (pages,
audit log, health signals, a ``destination.disabled`` event to the connection's other
destinations), and enabling it offers the recovery of what it missed."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import run_jobs
from tests.destinations.conftest import Receiver
from tests.destinations.support import deliveries, make_due, seed, standard_verify
from tests.helpers import csrf_from
from whoopadmin.audit import AuditEvent, utcnow
from whoopadmin.destinations import controls, health, jobs, service
from whoopadmin.destinations.models import Delivery, Destination
from whoopadmin.extensions import db


def post(client, path, data=None, page=None):
    token = csrf_from(client.get(page or path).get_data(as_text=True))
    return client.post(path, data={**(data or {}), "csrf_token": token})


def emit(app, conn_id, n: int) -> None:
    with app.app_context():
        service.emit(conn_id, "auth.success", {"n": n})
    run_jobs(app, ("deliveries",))


def get(app, dest_id) -> Destination:
    with app.app_context():
        row = db.session.get(Destination, dest_id)
        db.session.expunge(row)
        return row


def days_pass(app, dest_id, days: float) -> None:
    """The destination's run of failures began ``days`` ago."""
    with app.app_context():
        row = db.session.get(Destination, dest_id)
        row.failing_since = utcnow() - timedelta(days=days)
        db.session.commit()


def audit(app, action) -> list[AuditEvent]:
    with app.app_context():
        rows = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        ).all()
        for row in rows:
            db.session.expunge(row)
        return rows


def test_a_run_of_failures_starts_at_the_first_and_ends_at_a_success(private_ok, receiver):
    app = private_ok
    conn_id, dest_id, _ = seed(app, receiver.url)
    receiver.statuses = [500, 503]
    before = utcnow()
    emit(app, conn_id, 1)
    first = get(app, dest_id).failing_since
    assert first is not None and before <= first <= utcnow()
    emit(app, conn_id, 2)  # a second failure does not move the start
    assert get(app, dest_id).failing_since == first
    emit(app, conn_id, 3)  # a success ends the run
    assert get(app, dest_id).failing_since is None
    assert [json.loads(r["body"])["data"]["n"] for r in receiver.requests] == [1, 2, 3]


@pytest.fixture
def second_receiver():
    with Receiver() as server:
        yield server


def test_failing_for_five_days_disables_holds_and_tells_the_other_destinations(
    private_ok, operator_client, receiver, second_receiver
):
    app = private_ok
    conn_id, failing_id, _ = seed(app, receiver.url)
    with app.app_context():
        from whoopadmin.setup.models import Connection

        conn = db.session.get(Connection, conn_id)
        other, other_secret = service.create_destination(
            "test", conn, second_receiver.url, ["auth.success", "destination.disabled"]
        )
        paused, _ = service.create_destination(
            "test", conn, second_receiver.url + "/paused", ["destination.disabled"]
        )
        controls.disable("test", paused)
        other_id = other.id
    receiver.statuses = [500] * 10
    emit(app, conn_id, 1)
    assert len(receiver.requests) == 1 and get(app, failing_id).failing_since is not None

    days_pass(app, failing_id, 4.9)
    with app.app_context():
        assert jobs.disable_failing() == 0  # not five days yet
    days_pass(app, failing_id, 5.01)
    with app.app_context():
        assert jobs.disable_failing() == 1
        assert jobs.disable_failing() == 0  # once
    failing = get(app, failing_id)
    assert failing.disabled_at is not None and failing.disabled_reason == "failing"
    (entry,) = [a for a in audit(app, "destination.disable") if a.actor == "cron"]
    assert entry.target_id == str(failing_id) and entry.details["failing_since"]

    # The other enabled destination hears of it; the disabled one does not; nor the failing.
    run_jobs(app, ("deliveries",))
    told = [r for r in second_receiver.requests if json.loads(r["body"])["type"] != "auth.success"]
    (request,) = told
    event = standard_verify(other_secret, request)
    assert event["type"] == "destination.disabled"
    assert event["data"]["destination_id"] == failing_id
    assert event["data"]["host"] == "127.0.0.1" and "5 days" in event["data"]["message"]
    assert request["path"] == "/hooks/whoop?"  # not the paused destination's URL
    assert len(receiver.requests) == 1

    # Its pending retry and every new event are held: stored, not attempted.
    make_due(app)
    with app.app_context():
        service.retry_due()
    emit(app, conn_id, 2)
    assert len(receiver.requests) == 1
    held = [d for d in deliveries(app) if d.destination_id == failing_id]
    assert [(d.status, d.attempts) for d in held] == [("held", 1), ("held", 0)]
    assert [json.loads(r["body"])["data"]["n"] for r in second_receiver.requests[-1:]] == [2]

    # The operator sees it: destination page, list, health signals.
    page = operator_client.get(f"/destinations/{failing_id}").get_data(as_text=True)
    assert 'data-testid="destination-disabled"' in page and "Disabled automatically" in page
    assert re.search(r'data-testid="held-count">2<', page)
    listing = operator_client.get("/destinations").get_data(as_text=True)
    assert f'data-testid="disabled-{failing_id}"' in listing and "disabled (failing)" in listing
    with app.app_context():
        signals = {(s["name"], s["destination_id"]): s for s in health.signals(conn_id)}
    disabled = signals[("destination_disabled", failing_id)]
    assert disabled["state"] == "problem" and disabled["link"] == f"/destinations/{failing_id}"
    assert "5 days" in disabled["message"] and "enable" in disabled["next_step"]
    waiting = signals[("deliveries_waiting", failing_id)]
    assert waiting["state"] == "problem" and "2 deliveries" in waiting["message"]
    assert ("destination_disabled", other_id) not in signals


def test_the_number_of_days_is_configurable(private_ok, receiver):
    app = private_ok
    app.config["DESTINATION_DISABLE_AFTER_DAYS"] = 1
    conn_id, dest_id, _ = seed(app, receiver.url)
    receiver.statuses = [500]
    emit(app, conn_id, 1)
    days_pass(app, dest_id, 0.9)
    with app.app_context():
        assert jobs.disable_failing() == 0
    days_pass(app, dest_id, 1.1)
    with app.app_context():
        assert jobs.disable_failing() == 1


def test_a_working_or_paused_destination_is_never_disabled(private_ok, receiver):
    app = private_ok
    conn_id, dest_id, _ = seed(app, receiver.url)
    emit(app, conn_id, 1)
    _, paused_id, _ = seed(app, receiver.url, active=False, environment="staging", hostname="s.x")
    days_pass(app, paused_id, 10)
    with app.app_context():
        assert jobs.disable_failing() == 0
    assert get(app, dest_id).disabled_at is None and get(app, paused_id).disabled_at is None


def disabled_with_history(app, receiver):
    """A destination that failed, was disabled by the cron and held two events since."""
    conn_id, dest_id, secret = seed(app, receiver.url)
    receiver.statuses = [500] * 3
    emit(app, conn_id, 0)
    with app.app_context():
        row = db.session.scalar(sa.select(Delivery))
        row.status, row.next_attempt_at = "failed", None  # its retries ran out
        db.session.commit()
    days_pass(app, dest_id, 6)
    with app.app_context():
        jobs.disable_failing()
    emit(app, conn_id, 1)
    emit(app, conn_id, 2)
    receiver.requests.clear()
    receiver.statuses = []
    return conn_id, dest_id, secret


def test_enabling_offers_the_recovery_of_what_was_missed(private_ok, operator_client, receiver):
    app = private_ok
    _, dest_id, secret = disabled_with_history(app, receiver)
    disabled = get(app, dest_id)
    response = post(
        operator_client, f"/destinations/{dest_id}/enable", page=f"/destinations/{dest_id}"
    )
    location = response.headers["Location"]
    assert location.startswith(f"/destinations/{dest_id}/recovery?")
    assert "disabled_at=" in location and "failing_since=" in location
    enabled = get(app, dest_id)
    assert enabled.disabled_at is None and enabled.failing_since is None
    (entry,) = audit(app, "destination.enable")
    assert entry.actor == "operator@example.com" and entry.details == {"held": 2}

    page = operator_client.get(location).get_data(as_text=True)
    assert "Recover everything since it was disabled" in page
    assert "Recover everything since its failures began" in page
    offered = re.findall(r'name="since" value="([^"]+)"', page)
    assert len(offered) == 2
    assert offered[0] == disabled.disabled_at.strftime("%Y-%m-%dT%H:%M:%S")
    # "Since its failures began": six days ago, which also covers the failed one.
    response = post(operator_client, location.split("?")[0], {"since": offered[1]}, page=location)
    assert response.status_code == 303
    run_jobs(app, ("deliveries",))
    assert [json.loads(r["body"])["data"]["n"] for r in receiver.requests] == [0, 1, 2]
    for request in receiver.requests:
        standard_verify(secret, request)
    assert {d.status for d in deliveries(app) if d.recovery_id} == {"delivered"}
    with app.app_context():
        assert controls.held_count(dest_id) == 0


def test_bad_control_requests_say_why_and_change_nothing(private_ok, operator_client, receiver):
    app = private_ok
    _, dest_id, _ = seed(app, receiver.url)
    response = post(
        operator_client, f"/destinations/{dest_id}/enable", page=f"/destinations/{dest_id}"
    )
    assert response.headers["Location"] == f"/destinations/{dest_id}"
    text = operator_client.get(f"/destinations/{dest_id}").get_data(as_text=True)
    assert "This destination is not disabled." in text

    post(operator_client, f"/destinations/{dest_id}/disable", page=f"/destinations/{dest_id}")
    assert get(app, dest_id).disabled_reason == "operator"
    response = post(
        operator_client, f"/destinations/{dest_id}/disable", page=f"/destinations/{dest_id}"
    )
    text = operator_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "already disabled" in text
    assert len(audit(app, "destination.disable")) == 1
    assert audit(app, "destination.enable") == []

    with app.app_context():
        row = db.session.get(Destination, dest_id)
        row.disabled_at, row.active = None, False
        db.session.commit()
    response = post(
        operator_client, f"/destinations/{dest_id}/disable", page=f"/destinations/{dest_id}"
    )
    text = operator_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "paused" in text and get(app, dest_id).disabled_at is None
    for path in ("enable", "disable", "overlap/end", "recovery/cancel"):
        response = post(operator_client, f"/destinations/999/{path}", page="/destinations")
        assert response.status_code == 404, path


def test_a_disabled_destination_still_gets_test_events_but_no_resends(
    private_ok, operator_client, receiver
):
    app = private_ok
    conn_id, dest_id, _ = disabled_with_history(app, receiver)
    post(operator_client, f"/destinations/{dest_id}/test", page=f"/destinations/{dest_id}")
    run_jobs(app, ("deliveries",))
    (request,) = receiver.requests
    assert json.loads(request["body"])["type"] == "test"
    # The answer worked, so the run of failures is over; the destination stays disabled.
    assert get(app, dest_id).failing_since is None and get(app, dest_id).disabled_at
    with app.app_context():
        (signal,) = [s for s in health.signals(conn_id) if s["name"] == "destination_disabled"]
    assert "A test event has succeeded since." in signal["message"]
    failed, held = deliveries(app)[0], deliveries(app)[1]
    for delivery in (failed, held):
        response = post(
            operator_client,
            f"/destinations/deliveries/{delivery.id}/resend",
            page=f"/destinations/{dest_id}",
        )
        assert response.status_code == 409
    assert len(deliveries(app)) == 4  # failed, two held, the test event: no copies
    page = operator_client.get(f"/destinations/{dest_id}").get_data(as_text=True)
    row = page.split(f'data-testid="delivery-{held.id}"')[1].split("</tr>")[0]
    assert "held" in row and "Re-send" not in row


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DESTINATION_RECOVERY_RATE", "fast"),
        ("DESTINATION_RECOVERY_RATE", 0),
        ("DESTINATION_DISABLE_AFTER_DAYS", -1),
        ("DESTINATION_SECRET_OVERLAP_HOURS", 1e9),
        ("DESTINATION_RECOVERY_WINDOW_DAYS", None),
    ],
)
def test_bad_settings_stop_the_app_with_a_clear_message(make_app, name, value):
    from whoopadmin.config import ConfigError

    with pytest.raises(ConfigError, match=f"WHOOPADMIN_{name} must be a number"):
        make_app(**{name: value})
