"""DNS statuses over time: back-off, verified, moved, timed out, and the cron's due list."""

from datetime import timedelta

import pytest
from rq import Queue

from tests.conftest import run_jobs
from tests.helpers import zone
from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.redisconn import get_redis
from whoopadmin.setup import jobs, service
from whoopadmin.setup.models import Connection


@pytest.fixture
def pending(wizard):
    wizard.create()
    wizard.subdomain("production", "whoop.acme.test")
    run_jobs(wizard.app)  # the first check, queued by saving the subdomain
    return wizard


def _get(app) -> Connection:
    return db.session.scalar(db.select(Connection))


def test_backoff_schedule_while_pending(pending):
    app = pending.app
    with app.app_context():
        c = _get(app)
        assert c.status == "pending_dns" and c.dns_attempts == 1
        start = c.dns_since
        delays = []
        now = start
        for _ in range(10):
            service.run_dns_check(c, now=now)
            delays.append(c.dns_next_check_at - now)
            now = c.dns_next_check_at
        assert delays[0] == timedelta(minutes=2)  # the first check was the one-minute one
        assert delays[:4] == [timedelta(minutes=m) for m in (2, 4, 8, 16)]
        assert max(delays) == timedelta(hours=4)
        assert all(b >= a for a, b in zip(delays, delays[1:], strict=False))


def test_times_out_after_a_week(pending):
    app = pending.app
    with app.app_context():
        c = _get(app)
        service.run_dns_check(c, now=c.dns_since + timedelta(days=7, minutes=1))
        assert c.status == "timed_out"
        assert c.dns_next_check_at is None
        assert service.due_for_dns_check(utcnow() + timedelta(days=30)) == []


def test_verified_then_moved(pending):
    app = pending.app
    pending.publish_records("production")
    with app.app_context():
        c = _get(app)
        service.run_dns_check(c)
        assert c.status == "verified" and c.verified_at is not None
        assert c.dns_next_check_at - c.dns_checked_at == timedelta(days=1)
    pending.dns.load_zone(zone("acme.test", "whoop A 192.0.2.7\n"), origin="acme.test")
    with app.app_context():
        c = _get(app)
        result = service.run_dns_check(c, now=utcnow() + timedelta(days=1))
        assert c.status == "moved"
        assert "address_instead_of_cname" in result.codes()
        # Moved is checked again on the back-off schedule, not once a day.
        assert c.dns_next_check_at - c.dns_checked_at <= timedelta(minutes=1)
    pending.publish_records("production")
    with app.app_context():
        c = _get(app)
        service.run_dns_check(c, now=utcnow() + timedelta(days=1, minutes=5))
        assert c.status == "verified"


def test_active_stays_active_on_timeouts(configured_app, dns):
    dns.set_fault("drop")
    with configured_app.app_context():
        c = _get(configured_app)
        result = service.run_dns_check(c, now=utcnow() + timedelta(days=1))
        assert result.temporary
        assert c.status == "active"


def test_live_connection_that_verifies_stays_active(configured_app):
    with configured_app.app_context():
        c = _get(configured_app)
        service.run_dns_check(c, now=utcnow() + timedelta(days=1))
        assert c.status == "active"


def test_due_list_and_cron_job(pending):
    app = pending.app
    with app.app_context():
        c = _get(app)
        assert service.due_for_dns_check() == []  # next check is a minute away
        later = c.dns_next_check_at + timedelta(seconds=1)
        assert service.due_for_dns_check(later) == [c.id]
        c.dns_next_check_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
        assert jobs.check_due_domains() == 1
        assert jobs.check_due_domains() == 1  # queued once: the job id dedupes
        queue = Queue("domains", connection=get_redis(app))
        assert queue.count == 1
        assert queue.jobs[0].args == (c.id,)
    run_jobs(app)
    with app.app_context():
        assert _get(app).dns_attempts == 2


def test_job_for_a_deleted_connection_does_nothing(pending):
    with pending.app.app_context():
        assert jobs.check_domain(987654) is None


def test_cron_registers_dns_rechecks(app):
    from whoopadmin.jobs.schedule import build_cron

    scheduler = build_cron(app)
    names = {job.name for job in scheduler.get_jobs()}
    assert "whoopadmin.setup.jobs.check_due_domains" in names


def test_job_arguments_hold_no_secrets(pending):
    with pending.app.app_context():
        c = _get(pending.app)
        c.client_secret = "very-secret-client-secret"
        db.session.commit()
        service.request_dns_check(c)
        queue = Queue("domains", connection=get_redis(pending.app))
        raw = b"".join(
            v
            for k in get_redis(pending.app).keys("rq:job:*")
            for v in get_redis(pending.app).hgetall(k).values()
        )
        assert queue.count == 1
        assert b"very-secret-client-secret" not in raw
