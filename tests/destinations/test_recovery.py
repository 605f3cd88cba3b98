"""Recovery: "re-send everything that failed since …" to a real receiver on loopback — in order,
at the configured rate, visible as it goes, cancellable, one at a time, resumed after a
worker dies; bad input refused with a message and nothing stored lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import run_jobs
from tests.destinations.support import deliveries, seed
from tests.helpers import csrf_from
from whoopadmin.audit import AuditEvent, utcnow
from whoopadmin.destinations import jobs, recovery, service
from whoopadmin.destinations.models import Delivery, DeliveryRecovery, Destination
from whoopadmin.extensions import db


def post(client, path, data=None, page=None):
    token = csrf_from(client.get(page or path).get_data(as_text=True))
    return client.post(path, data={**(data or {}), "csrf_token": token})


def failed_events(app, receiver, conn_id: int, n: int, start: int = 0) -> list[int]:
    """``n`` events whose delivery really failed at the receiver, then ran out of retries."""
    receiver.statuses = [500] * n
    with app.app_context():
        for i in range(start, start + n):
            service.emit(conn_id, "auth.success", {"n": i})
    run_jobs(app, ("deliveries",))
    with app.app_context():
        rows = db.session.scalars(sa.select(Delivery).where(Delivery.status == "pending")).all()
        assert len(rows) == n and all(r.last_status_code == 500 for r in rows)
        for row in rows:
            row.status, row.next_attempt_at = "failed", None
        db.session.commit()
        ids = [r.id for r in rows]
    receiver.requests.clear()
    return ids


def since_text(delta=timedelta(hours=1)) -> str:
    return (utcnow() - delta).strftime("%Y-%m-%dT%H:%M")


def numbers(requests) -> list[int]:
    return [json.loads(r["body"])["data"]["n"] for r in requests]


def the_recovery(app) -> DeliveryRecovery:
    with app.app_context():
        row = db.session.scalar(sa.select(DeliveryRecovery).order_by(DeliveryRecovery.id.desc()))
        db.session.expunge(row)
        return row


def test_recovery_resends_in_order_at_the_rate_and_finishes(private_ok, operator_client, receiver):
    app = private_ok
    app.config["DESTINATION_RECOVERY_RATE"] = 10.0  # at least 0.1 s between two sends
    conn_id, dest_id, secret = seed(app, receiver.url)
    failed_events(app, receiver, conn_id, 8)

    started = time.monotonic()
    response = post(operator_client, f"/destinations/{dest_id}/recovery", {"since": since_text()})
    assert response.headers["Location"] == f"/destinations/{dest_id}/recovery"
    run_jobs(app, ("deliveries",))

    assert numbers(receiver.requests) == list(range(8))  # oldest first
    for i, request in enumerate(receiver.requests):
        # The i-th send starts no sooner than i intervals after the start.
        assert request["at"] - started >= i * 0.1 - 0.005, i
        service_verify(secret, request)
    done = the_recovery(app)
    assert (done.status, done.total, done.done, done.sent, done.failed, done.skipped) == (
        "finished",
        8,
        8,
        8,
        0,
        0,
    )
    assert done.running_for is None
    rows = deliveries(app)
    originals, copies = rows[:8], rows[8:]
    assert all(r.status == "failed" for r in originals)  # their history stays as it was
    assert [c.resend_of_id for c in copies] == [o.id for o in originals]
    assert all(c.status == "delivered" and c.recovery_id == done.id for c in copies)
    assert [c.event_id for c in copies] == [o.event_id for o in originals]

    page = operator_client.get(f"/destinations/{dest_id}/recovery")
    text = page.get_data(as_text=True)
    assert "Refresh" not in page.headers
    assert f'data-testid="recovery-{done.id}"' in text and "finished" in text
    assert "8/8" in text
    with app.app_context():
        actions = db.session.scalars(
            sa.select(AuditEvent.action)
            .where(AuditEvent.action.like("%recovery%"))
            .order_by(AuditEvent.id)
        ).all()
    assert actions == ["destination.recovery_start", "destination.recovery_finish"]

    # A second recovery over the same time finds each event delivered: it sends nothing.
    response = post(operator_client, f"/destinations/{dest_id}/recovery", {"since": since_text()})
    assert response.status_code == 303
    run_jobs(app, ("deliveries",))
    assert len(receiver.requests) == 8
    again = the_recovery(app)
    assert again.id != done.id
    assert (again.status, again.done, again.sent, again.skipped) == ("finished", 8, 0, 8)


def service_verify(secret, request):
    from whoopadmin.destinations.signing import verify

    verify(secret, request["headers"]["Whoopadmin-Signature"], request["body"])


def test_what_a_recovery_covers(private_ok, receiver):
    """Since the chosen time, originals that failed or are held; not delivered ones, not
    test events, not events already re-sent successfully, not older ones."""
    app = private_ok
    conn_id, dest_id, _ = seed(app, receiver.url)
    old, skipped_resent, failed_a, failed_b = failed_events(app, receiver, conn_id, 4)
    with app.app_context():
        # "old" failed three hours ago: before the recovery's start time.
        row = db.session.get(Delivery, old)
        row.created_at = utcnow() - timedelta(hours=3)
        # One was re-sent by hand and delivered meanwhile.
        db.session.commit()
        service.resend("test", db.session.get(Delivery, skipped_resent))
        # A test event that failed, and an event that was delivered.
        test = service.send_test("test", db.session.get(Destination, dest_id))
        test_id = test.id
    receiver.statuses = [500]
    run_jobs(app, ("deliveries",))
    with app.app_context():
        db.session.get(Delivery, test_id).status = "failed"
        db.session.commit()
        service.emit(conn_id, "auth.success", {"n": 99})
    run_jobs(app, ("deliveries",))
    with app.app_context():
        # And one held while the destination was disabled (sent itself, not a copy).
        held = Delivery(
            **{
                **_copyable(db.session.get(Delivery, failed_b)),
                "event_id": "evt_held",
                "payload": json.dumps({"data": {"n": 50}}),
                "status": "held",
            }
        )
        db.session.add(held)
        db.session.commit()
        held_id = held.id
    receiver.requests.clear()

    with app.app_context():
        started = recovery.start(
            "test", db.session.get(Destination, dest_id), utcnow() - timedelta(hours=1)
        )
        assert started.total == 4  # skipped_resent, failed_a, failed_b, held
    run_jobs(app, ("deliveries",))
    assert numbers(receiver.requests) == [2, 3, 50]
    done = the_recovery(app)
    assert (done.done, done.sent, done.skipped, done.failed) == (4, 3, 1, 0)
    with app.app_context():
        held_row = db.session.get(Delivery, held_id)
        assert held_row.status == "delivered" and held_row.recovery_id == done.id
        assert db.session.get(Delivery, old).status == "failed"  # not recovered


def _copyable(row: Delivery) -> dict:
    names = ("destination_id", "connection_id", "event_id", "event_type", "payload")
    return {n: getattr(row, n) for n in names}


def test_progress_is_visible_while_it_runs_and_it_can_be_cancelled(
    private_ok, operator_client, receiver
):
    app = private_ok
    app.config["DESTINATION_RECOVERY_RATE"] = 100.0
    conn_id, dest_id, _ = seed(app, receiver.url)
    failed_events(app, receiver, conn_id, 6)
    gate = threading.Event()
    receiver.gates[3] = gate  # the third send waits at the receiver
    post(operator_client, f"/destinations/{dest_id}/recovery", {"since": since_text()})
    recovery_id = the_recovery(app).id

    def job():  # what the queued job runs (RQ's worker wants the main thread)
        with app.app_context():
            jobs.run_recovery(recovery_id)

    worker = threading.Thread(target=job, daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while len(receiver.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(receiver.requests) == 3
        page = operator_client.get(f"/destinations/{dest_id}/recovery")
        text = page.get_data(as_text=True)
        assert page.headers["Refresh"] == "5"  # it reloads itself while running
        assert 'data-status="running"' in text
        assert 'data-testid="recovery-done">2<' in text  # two done, the third in flight
        assert 'data-testid="recovery-total">6<' in text
        second = deliveries(app)[1]
        assert f"(delivery #{second.id})" in text  # the current position
        edit = operator_client.get(f"/destinations/{dest_id}").get_data(as_text=True)
        assert 'data-testid="recovery-running"' in edit and "2 of 6 done" in edit

        # One at a time: a second start is refused while this one runs.
        response = post(
            operator_client, f"/destinations/{dest_id}/recovery", {"since": since_text()}
        )
        assert response.status_code == 400 or "already running" in response.get_data(as_text=True)
        response = post(
            operator_client,
            f"/destinations/{dest_id}/recovery/cancel",
            page=f"/destinations/{dest_id}/recovery",
        )
        assert response.headers["Location"] == f"/destinations/{dest_id}/recovery"
    finally:
        gate.set()
        worker.join(30)
    assert not worker.is_alive()
    assert numbers(receiver.requests) == [0, 1, 2]  # nothing after the cancel
    cancelled = the_recovery(app)
    assert (cancelled.status, cancelled.done, cancelled.total) == ("cancelled", 3, 6)
    assert cancelled.ended_by == "operator@example.com" and cancelled.running_for is None
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(DeliveryRecovery.id))) == 1
        assert db.session.scalar(
            sa.select(AuditEvent.actor).where(AuditEvent.action == "destination.recovery_cancel")
        ) == ("operator@example.com")
    # Cancelling again: there is nothing to cancel, and the page says so.
    response = post(
        operator_client,
        f"/destinations/{dest_id}/recovery/cancel",
        page=f"/destinations/{dest_id}/recovery",
    )
    text = operator_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "No recovery is running" in text


def test_one_recovery_at_a_time_even_when_two_start_together(private_ok, receiver):
    """The unique ``running_for`` column refuses a second running recovery in the database."""
    app = private_ok
    conn_id, dest_id, _ = seed(app, receiver.url)
    failed_events(app, receiver, conn_id, 2)
    with app.app_context():
        destination = db.session.get(Destination, dest_id)
        recovery.start("test", destination, utcnow() - timedelta(hours=1))
        # As if the check had passed in a second request at the same moment.
        db.session.add(
            DeliveryRecovery(
                destination_id=dest_id,
                running_for=dest_id,
                since=utcnow(),
                started_by="other",
            )
        )
        with pytest.raises(sa.exc.IntegrityError):
            db.session.commit()
        db.session.rollback()


def test_a_recovery_stops_when_the_receiver_keeps_failing(private_ok, receiver):
    app = private_ok
    app.config["DESTINATION_RECOVERY_RATE"] = 1000.0
    conn_id, dest_id, _ = seed(app, receiver.url)
    failed_events(app, receiver, conn_id, recovery.STOP_AFTER_FAILURES + 3)
    receiver.statuses = [500] * 100
    with app.app_context():
        recovery.start("test", db.session.get(Destination, dest_id), utcnow() - timedelta(hours=1))
    run_jobs(app, ("deliveries",))
    stopped = the_recovery(app)
    assert stopped.status == "stopped" and "still fails" in stopped.message
    assert stopped.failed == recovery.STOP_AFTER_FAILURES
    assert len(receiver.requests) == recovery.STOP_AFTER_FAILURES
    # The ones it sent go on with the usual retries.
    with app.app_context():
        copies = db.session.scalars(
            sa.select(Delivery).where(Delivery.recovery_id == stopped.id)
        ).all()
        assert all(c.status == "pending" and c.next_attempt_at > utcnow() for c in copies)


def test_recovery_runs_in_slices_that_queue_each_other(private_ok, receiver, monkeypatch):
    """A long recovery is several short jobs; each goes on where the last stopped."""
    app = private_ok
    app.config["DESTINATION_RECOVERY_RATE"] = 1000.0
    monkeypatch.setattr(recovery, "SLICE_SECONDS", 0.0)  # one send per job
    conn_id, dest_id, _ = seed(app, receiver.url)
    failed_events(app, receiver, conn_id, 4)
    with app.app_context():
        recovery.start("test", db.session.get(Destination, dest_id), utcnow() - timedelta(hours=1))
    run_jobs(app, ("deliveries",))
    assert numbers(receiver.requests) == [0, 1, 2, 3]
    from rq.registry import FinishedJobRegistry

    from whoopadmin.jobs import get_queue

    with app.app_context():
        finished = FinishedJobRegistry(queue=get_queue("deliveries")).get_job_ids()
    # Four slices of one send each, then the one that finds nothing left and finishes.
    assert len([j for j in finished if j.startswith("recovery-")]) == 5
    assert the_recovery(app).status == "finished"


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("since", "message"),
    [
        ("", "Enter the date and time"),
        ("yesterday", "Enter a date and time like"),
        ("2026-13-45T25:61", "Enter a date and time like"),
        ("1'; DROP TABLE deliveries; --", "Enter a date and time like"),
        ("x" * 5000, "Enter a date and time like"),
        ("0001-01-01T00:00", "reaches back at most 30 days"),
        ("9999-12-31T23:59", "in the future"),
        ("future", None),
        ("too old", None),
    ],
)
def test_bad_recovery_times_are_refused_with_a_message(
    private_ok, operator_client, receiver, since, message
):
    app = private_ok
    conn_id, dest_id, _ = seed(app, receiver.url)
    failed_events(app, receiver, conn_id, 1)
    if since == "future":
        since, message = (utcnow() + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"), "future"
    elif since == "too old":
        since, message = since_text(timedelta(days=30, minutes=5)), "reaches back"
    before = deliveries(app)
    response = post(operator_client, f"/destinations/{dest_id}/recovery", {"since": since})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(DeliveryRecovery.id))) == 0
    assert [(d.id, d.status) for d in deliveries(app)] == [(d.id, d.status) for d in before]


def test_the_window_is_configurable_and_refusals_name_the_earliest_time(
    private_ok, operator_client, receiver
):
    app = private_ok
    app.config["DESTINATION_RECOVERY_WINDOW_DAYS"] = 2
    conn_id, dest_id, _ = seed(app, receiver.url)
    failed_events(app, receiver, conn_id, 1)
    response = post(
        operator_client,
        f"/destinations/{dest_id}/recovery",
        {"since": since_text(timedelta(days=3))},
    )
    assert response.status_code == 400
    assert "at most 2 days" in response.get_data(as_text=True)
    response = post(
        operator_client,
        f"/destinations/{dest_id}/recovery",
        {"since": since_text(timedelta(days=1))},
    )
    assert response.status_code == 303


def test_nothing_to_recover_and_unusable_destinations_are_refused(
    private_ok, operator_client, receiver
):
    app = private_ok
    conn_id, dest_id, _ = seed(app, receiver.url)
    response = post(operator_client, f"/destinations/{dest_id}/recovery", {"since": since_text()})
    assert response.status_code == 400
    assert "nothing to recover" in response.get_data(as_text=True)

    failed_events(app, receiver, conn_id, 1)
    with app.app_context():
        destination = db.session.get(Destination, dest_id)
        destination.disabled_at = utcnow()
        db.session.commit()
    response = post(operator_client, f"/destinations/{dest_id}/recovery", {"since": since_text()})
    assert response.status_code == 400 and "Enable the destination first" in response.get_data(
        as_text=True
    )
    with app.app_context():
        destination = db.session.get(Destination, dest_id)
        destination.disabled_at, destination.active = None, False
        db.session.commit()
    response = post(operator_client, f"/destinations/{dest_id}/recovery", {"since": since_text()})
    assert response.status_code == 400 and "paused" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(DeliveryRecovery.id))) == 0


def test_junk_offers_in_the_query_string_are_ignored(private_ok, operator_client, receiver):
    app = private_ok
    _, dest_id, _ = seed(app, receiver.url)
    for query in (
        "?disabled_at=junk&failing_since=2026-02-30T00:00:00",
        "?disabled_at=" + "9" * 5000,
        "?failing_since=%ff%fe&disabled_at=2026-01-01T00:00:00%20",
    ):
        response = operator_client.get(f"/destinations/{dest_id}/recovery{query}")
        assert response.status_code == 200
        assert 'data-testid="recovery-offers"' not in response.get_data(as_text=True)
    assert operator_client.get("/destinations/999/recovery").status_code == 404


def test_recovery_pages_refuse_support_staff_and_forms_without_csrf(
    private_ok, client, auth, receiver
):
    from tests.factories import make_user

    app = private_ok
    _, dest_id, _ = seed(app, receiver.url)
    with app.app_context():
        make_user("support")
        make_user("operator")
    auth.login("support@example.com", "support-password")
    token = csrf_from(client.get("/links").get_data(as_text=True))
    for method, path in [
        ("GET", f"/destinations/{dest_id}/recovery"),
        ("POST", f"/destinations/{dest_id}/recovery"),
        ("POST", f"/destinations/{dest_id}/recovery/cancel"),
        ("POST", f"/destinations/{dest_id}/enable"),
        ("POST", f"/destinations/{dest_id}/disable"),
        ("POST", f"/destinations/{dest_id}/mode"),
        ("POST", f"/destinations/{dest_id}/overlap/end"),
    ]:
        response = client.open(path, method=method, data={"csrf_token": token})
        assert response.status_code == 403, path
    client.post("/logout", data={"csrf_token": csrf_from(client.get("/links").get_data(True))})
    auth.login()
    for path in ("recovery", "recovery/cancel", "enable", "disable", "mode", "overlap/end"):
        response = client.post(f"/destinations/{dest_id}/{path}", data={"since": since_text()})
        assert response.status_code == 400, path
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(DeliveryRecovery.id))) == 0
        assert db.session.get(Destination, dest_id).disabled_at is None


# --------------------------------------------------------------------------- worker death


def _worker_env(app) -> dict:
    from tests.helpers import cli_env

    config = app.config
    return {
        **cli_env(app),
        "WHOOPADMIN_ALLOW_PRIVATE_DESTINATIONS": "true",
        "WHOOPADMIN_DESTINATION_TIMEOUT": str(config["DESTINATION_TIMEOUT"]),
        "WHOOPADMIN_DESTINATION_RECOVERY_RATE": str(config["DESTINATION_RECOVERY_RATE"]),
    }


def test_a_recovery_resumes_after_its_worker_is_killed(private_ok, receiver):
    """Injected: SIGKILL to a ``--no-fork`` worker mid-recovery. The cron's resume pass queues
    it again once its lease lapses; the next worker goes on from where it stopped, so every
    event arrives, first arrivals in order, at most the one in flight twice."""
    app = private_ok
    app.config["DESTINATION_TIMEOUT"] = 1.0  # a short lease: 4 × 1 s + 1/rate + 5 s
    app.config["DESTINATION_RECOVERY_RATE"] = 5.0
    conn_id, dest_id, _ = seed(app, receiver.url)
    failed_events(app, receiver, conn_id, 12)
    with app.app_context():
        recovery.start("test", db.session.get(Destination, dest_id), utcnow() - timedelta(hours=1))
    worker = subprocess.Popen(
        [sys.executable, "-m", "whoopadmin.cli", "worker", "deliveries", "--no-fork"],
        env=_worker_env(app),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(receiver.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(receiver.requests) >= 3, "the recovery never started"
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(20)
    killed_at = len(receiver.requests)
    assert killed_at < 12  # the kill really interrupted it
    partial = the_recovery(app)
    assert partial.status == "running" and partial.done < 12

    with app.app_context():
        assert jobs.resume_recoveries() == 0  # its lease has not lapsed yet
        deadline = time.monotonic() + 30
        resumed = 0
        while not resumed and time.monotonic() < deadline:
            time.sleep(0.5)
            resumed = jobs.resume_recoveries()
        assert resumed == 1
    run_jobs(app, ("deliveries",))

    sent = numbers(receiver.requests)
    first_arrivals = list(dict.fromkeys(sent))
    assert first_arrivals == list(range(12))
    assert all(sent.count(n) <= 2 for n in range(12))
    assert len(sent) <= 13
    done = the_recovery(app)
    assert (done.status, done.done, done.total) == ("finished", 12, 12)
    with app.app_context():
        statuses = db.session.scalars(
            sa.select(Delivery.status).where(Delivery.recovery_id == done.id)
        ).all()
        assert len(statuses) == 12 and set(statuses) == {"delivered"}


def test_a_recovery_whose_job_was_lost_is_queued_again(private_ok, receiver, monkeypatch):
    """Redis down when it started: the recovery is stored; the cron queues it later."""
    import whoopadmin.jobs

    app = private_ok
    conn_id, dest_id, _ = seed(app, receiver.url)
    failed_events(app, receiver, conn_id, 2)

    def down(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(whoopadmin.jobs, "get_queue", down)
    with app.app_context():
        recovery.start("test", db.session.get(Destination, dest_id), utcnow() - timedelta(hours=1))
    monkeypatch.undo()
    run_jobs(app, ("deliveries",))
    assert receiver.requests == []
    with app.app_context():
        assert jobs.resume_recoveries() == 0  # queued a moment ago: give it its lease
        row = db.session.scalar(sa.select(DeliveryRecovery))
        row.queued_at = datetime.now(UTC) - timedelta(minutes=5)
        db.session.commit()
        assert jobs.resume_recoveries() == 1
        assert jobs.resume_recoveries() == 0  # not twice
    run_jobs(app, ("deliveries",))
    assert numbers(receiver.requests) == [0, 1]


def test_deleting_a_destination_ends_its_recovery_quietly(private_ok, receiver):
    from rq.registry import FailedJobRegistry

    from whoopadmin.jobs import get_queue

    app = private_ok
    conn_id, dest_id, _ = seed(app, receiver.url)
    failed_events(app, receiver, conn_id, 2)
    with app.app_context():
        destination = db.session.get(Destination, dest_id)
        recovery.start("test", destination, utcnow() - timedelta(hours=1))
        service.delete_destination("test", destination)
        assert db.session.scalar(sa.select(sa.func.count(DeliveryRecovery.id))) == 0
    run_jobs(app, ("deliveries",))
    assert receiver.requests == []
    with app.app_context():
        assert FailedJobRegistry(queue=get_queue("deliveries")).count == 0
