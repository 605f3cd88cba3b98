"""Rotating a signing secret with an overlap: the old secret signs beside the new one, in both
header schemes, until the overlap ends (the operator's button or the cron after 24 h); the
secrets are sealed at rest and shown nowhere after the page that shows the new one."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import sqlalchemy as sa
from standardwebhooks import WebhookVerificationError

from tests.conftest import run_jobs
from tests.destinations.support import (
    deliveries,
    seed,
    shown_secret,
    signatures,
    standard_verify,
)
from tests.helpers import csrf_from
from whoopadmin.audit import AuditEvent, utcnow
from whoopadmin.destinations import controls, jobs, service
from whoopadmin.destinations.models import Destination
from whoopadmin.destinations.signing import SignatureError, verify
from whoopadmin.extensions import db


def post(client, path, data=None, page=None):
    token = csrf_from(client.get(page or path).get_data(as_text=True))
    return client.post(path, data={**(data or {}), "csrf_token": token})


def rotate(client, dest_id) -> str:
    """Rotate through the confirmation page: the first post only asks, the second rotates."""
    path, page = f"/destinations/{dest_id}/rotate", f"/destinations/{dest_id}"
    asked = post(client, path, page=page)
    assert asked.status_code == 200 and 'data-testid="new-secret"' not in asked.get_data(True)
    response = post(client, path, {"confirm": "yes"}, page=page)
    assert response.status_code == 200
    return shown_secret(response)


def send_test(app, client, receiver, dest_id) -> dict:
    before = len(receiver.requests)
    post(client, f"/destinations/{dest_id}/test", page=f"/destinations/{dest_id}")
    run_jobs(app, ("deliveries",))
    assert len(receiver.requests) == before + 1
    return receiver.requests[-1]


def verifies(secret: str, request: dict) -> bool:
    """Whether ``secret`` verifies the request in *both* schemes (and never in one only)."""
    try:
        verify(secret, request["headers"]["Whoopadmin-Signature"], request["body"])
        ours = True
    except SignatureError:
        ours = False
    try:
        standard_verify(secret, request)
        theirs = True
    except WebhookVerificationError:
        theirs = False
    assert ours == theirs, "the two header schemes disagree"
    return ours


def audit_actions(app, action_prefix="destination.") -> list[tuple[str, str]]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(AuditEvent.actor, AuditEvent.action)
            .where(AuditEvent.action.startswith(action_prefix))
            .order_by(AuditEvent.id)
        ).all()
        return [tuple(r) for r in rows]


def test_old_and_new_secret_both_sign_until_the_operator_ends_the_overlap(
    private_ok, operator_client, receiver
):
    app = private_ok
    _, dest_id, old = seed(app, receiver.url)
    new = rotate(operator_client, dest_id)
    page = operator_client.get(f"/destinations/{dest_id}").get_data(as_text=True)
    assert 'data-testid="secret-overlap"' in page

    request = send_test(app, operator_client, receiver, dest_id)
    ours, theirs = signatures(request)
    assert len(ours) == 2 and len(theirs) == 2
    assert all(s.startswith("v1,") for s in theirs)
    assert verifies(new, request) and verifies(old, request)
    assert not verifies(service.generate_secret(), request)

    response = post(
        operator_client, f"/destinations/{dest_id}/overlap/end", page=f"/destinations/{dest_id}"
    )
    assert response.headers["Location"] == f"/destinations/{dest_id}"
    page = operator_client.get(f"/destinations/{dest_id}").get_data(as_text=True)
    assert "Overlap ended" in page and 'data-testid="secret-overlap"' not in page

    request = send_test(app, operator_client, receiver, dest_id)
    ours, theirs = signatures(request)
    assert len(ours) == 1 and len(theirs) == 1
    assert verifies(new, request) and not verifies(old, request)
    with app.app_context():
        row = db.session.get(Destination, dest_id)
        assert row.previous_secret_sealed is None and row.previous_secret_expires_at is None
    assert ("operator@example.com", "destination.end_overlap") in audit_actions(app)


def test_the_overlap_ends_by_itself_after_the_configured_hours(private_ok, receiver):
    app = private_ok
    app.config["DESTINATION_SECRET_OVERLAP_HOURS"] = 2
    conn_id, dest_id, old = seed(app, receiver.url)
    with app.app_context():
        destination = db.session.get(Destination, dest_id)
        new = service.rotate_secret("test", destination)
        expires = destination.previous_secret_expires_at
        assert timedelta(minutes=119) < expires - utcnow() <= timedelta(hours=2)
        # The cron leaves a running overlap alone.
        assert jobs.end_expired_overlaps() == 0
        service.emit(conn_id, "auth.success", {"n": 1})
    run_jobs(app, ("deliveries",))
    assert verifies(old, receiver.requests[-1]) and verifies(new, receiver.requests[-1])

    with app.app_context():  # two hours pass: the old secret stops signing at once …
        destination = db.session.get(Destination, dest_id)
        destination.previous_secret_expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
        service.emit(conn_id, "auth.success", {"n": 2})
    run_jobs(app, ("deliveries",))
    assert verifies(new, receiver.requests[-1]) and not verifies(old, receiver.requests[-1])
    assert len(signatures(receiver.requests[-1])[1]) == 1

    with app.app_context():  # … and the cron forgets it.
        assert jobs.end_expired_overlaps() == 1
        destination = db.session.get(Destination, dest_id)
        assert destination.previous_secret_sealed is None
        assert jobs.end_expired_overlaps() == 0
    assert ("cron", "destination.end_overlap") in audit_actions(app)


def test_overlap_zero_hours_stops_the_old_secret_at_once(private_ok, receiver):
    app = private_ok
    app.config["DESTINATION_SECRET_OVERLAP_HOURS"] = 0
    conn_id, dest_id, old = seed(app, receiver.url)
    with app.app_context():
        new = service.rotate_secret("test", db.session.get(Destination, dest_id))
        assert db.session.get(Destination, dest_id).previous_secret_sealed is None
        service.emit(conn_id, "auth.success", {"n": 1})
    run_jobs(app, ("deliveries",))
    assert verifies(new, receiver.requests[-1]) and not verifies(old, receiver.requests[-1])


def test_rotating_during_an_overlap_drops_the_oldest_secret(private_ok, operator_client, receiver):
    app = private_ok
    _, dest_id, first = seed(app, receiver.url)
    second = rotate(operator_client, dest_id)
    third = rotate(operator_client, dest_id)
    request = send_test(app, operator_client, receiver, dest_id)
    assert len(signatures(request)[0]) == 2
    assert verifies(third, request) and verifies(second, request)
    assert not verifies(first, request)
    with app.app_context():
        last = db.session.scalar(
            sa.select(AuditEvent)
            .where(AuditEvent.action == "destination.rotate_secret")
            .order_by(AuditEvent.id.desc())
        )
        assert last.details["dropped_previous_overlap"] is True
        assert last.details["overlap_until"]


def test_ending_an_overlap_that_is_not_there_says_so(private_ok, operator_client, receiver):
    app = private_ok
    _, dest_id, secret = seed(app, receiver.url)
    response = post(
        operator_client, f"/destinations/{dest_id}/overlap/end", page=f"/destinations/{dest_id}"
    )
    assert response.status_code == 303
    page = operator_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "no overlap to end" in page
    with app.app_context():
        assert db.session.get(Destination, dest_id).signing_secret == secret
    assert audit_actions(app, "destination.end_overlap") == []
    # Without the CSRF token: refused, nothing changes.
    rotate(operator_client, dest_id)
    assert operator_client.post(f"/destinations/{dest_id}/overlap/end").status_code == 400
    with app.app_context():
        assert db.session.get(Destination, dest_id).previous_secret_sealed is not None
    assert operator_client.post("/destinations/999/overlap/end").status_code in (400, 404)


def _database_text(app) -> str:
    """Every value of every table, as text: what a stolen database dump would show."""
    with app.app_context():
        parts = []
        for table in db.metadata.sorted_tables:
            for row in db.session.execute(sa.select(table)).all():
                parts.append(repr(tuple(row)))
        return "\n".join(parts)


def _redis_text(app) -> str:
    from whoopadmin.redisconn import get_redis

    with app.app_context():
        redis = get_redis(app)
        parts = []
        for key in redis.scan_iter("*"):
            kind = redis.type(key)
            if kind == b"hash":
                parts.append(repr(redis.hgetall(key)))
            elif kind == b"string":
                parts.append(repr(redis.get(key)))
            elif kind == b"list":
                parts.append(repr(redis.lrange(key, 0, -1)))
        return "\n".join(parts)


def _queued_job_arguments(app) -> list[tuple[str, tuple]]:
    from whoopadmin.jobs import get_queue

    with app.app_context():
        return [
            (job.func_name, (*job.args, *job.kwargs.values()))
            for job in get_queue("deliveries").jobs
        ]


def test_old_and_new_secrets_are_in_no_page_log_job_or_database_column(
    private_ok, operator_client, receiver, caplog
):
    caplog.set_level(logging.DEBUG)
    app = private_ok
    conn_id, dest_id, old = seed(app, receiver.url)
    new = rotate(operator_client, dest_id)
    # Work that touches both secrets: deliveries, a recovery, the cron passes.
    receiver.statuses = [500]
    send_test(app, operator_client, receiver, dest_id)
    with app.app_context():
        service.emit(conn_id, "auth.success", {"n": 1})
    run_jobs(app, ("deliveries",))
    test_event, event = deliveries(app)
    assert (test_event.event_type, event.event_type) == ("test", "auth.success")
    delivery_id = event.id
    with app.app_context():  # its retries ran out
        row = db.session.get(type(event), event.id)
        row.status = "failed"
        db.session.commit()
    since = (utcnow() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    response = post(operator_client, f"/destinations/{dest_id}/recovery", {"since": since})
    assert response.status_code == 303
    redis_before_run = _redis_text(app)
    queued = _queued_job_arguments(app)  # the recovery job, decoded: ids only
    assert any(name.endswith("run_recovery") for name, _ in queued)
    assert all(isinstance(a, int) for _, args in queued for a in args)
    run_jobs(app, ("deliveries",))
    assert len(receiver.requests) == 3  # the test event, the event, its recovery
    with app.app_context():
        jobs.end_expired_overlaps()
        controls.disable_failing()

    pages = [
        "/destinations",
        f"/destinations/{dest_id}",
        f"/destinations/{dest_id}/recovery",
        f"/destinations/deliveries/{delivery_id}",
        "/audit",
        "/jobs",
        "/",
    ]
    for path in pages:
        text = operator_client.get(path).get_data(as_text=True)
        for secret in (old, new):
            assert secret not in text, path
            assert secret[6:20] not in text, path
    everywhere = "\n".join([_database_text(app), redis_before_run, _redis_text(app), caplog.text])
    for secret in (old, new):
        assert secret not in everywhere
        assert secret[6:20] not in everywhere
    # Both are there, sealed: the key ring opens them.
    with app.app_context():
        row = db.session.get(Destination, dest_id)
        assert row.signing_secret == new and row.previous_secret == old
        assert row.previous_secret_sealed.startswith("v1.")


def test_the_sealed_previous_secret_is_bound_to_its_row(private_ok, receiver):
    from whoopadmin.crypto import DecryptError

    app = private_ok
    _, first_id, _ = seed(app, receiver.url)
    _, second_id, _ = seed(app, receiver.url, environment="staging", hostname="w.s.acme.com")
    with app.app_context():
        first = db.session.get(Destination, first_id)
        service.rotate_secret("test", first)
        second = db.session.get(Destination, second_id)
        # A sealed secret copied to another row (or column) does not open there.
        second.previous_secret_sealed = first.previous_secret_sealed
        with pytest.raises(DecryptError):
            _ = second.previous_secret
        first.signing_secret_sealed, first.previous_secret_sealed = (
            first.previous_secret_sealed,
            first.signing_secret_sealed,
        )
        with pytest.raises(DecryptError):
            _ = first.signing_secret
        db.session.rollback()
