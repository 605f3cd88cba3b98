"""What each kind of sync costs in WHOOP calls (counted by health.calls), against the
sandbox over HTTP: the cuts bench/budget.py measures."""

from datetime import timedelta

import sqlalchemy as sa

from tests.conftest import run_jobs
from whoopadmin.audit import utcnow
from whoopadmin.connect.models import Link
from whoopadmin.extensions import db
from whoopadmin.health import calls
from whoopadmin.sandbox import changes
from whoopadmin.sandbox import data as gen
from whoopadmin.sync import jobs, service
from whoopadmin.sync.models import WhoopRecord


def _calls(app, link_id):
    with app.app_context():
        link = db.session.get(Link, link_id)
        return calls.today(link.connection_id)


def test_recovery_event_reads_the_recovery_once(configured_app, linked, sandbox, member):
    run_jobs(configured_app, ("backfill",))
    data = sandbox.state.data(member.user_id)
    sleep = next(s for s in data.sleeps.records if not s["nap"])
    before = _calls(configured_app, linked).get(calls.WEBHOOK, 0)
    with configured_app.app_context():
        link = db.session.get(Link, linked)
        assert service.apply_event(link, "sleep.updated", sleep["id"]) == "sleep stored"
        assert service.apply_event(link, "recovery.updated", sleep["id"]) == "recovery stored"
    # The sleep once, the recovery once: the recovery's cycle comes from the stored sleep.
    assert _calls(configured_app, linked)[calls.WEBHOOK] - before == 2


def test_recovery_of_an_unknown_sleep_reads_the_sleep_first(configured_app, linked, sandbox):
    with configured_app.app_context():
        link = db.session.get(Link, linked)
        member_sleep = next(
            s for s in sandbox.state.data(link.whoop_user_id).sleeps.records if not s["nap"]
        )
        assert service.apply_event(link, "recovery.updated", member_sleep["id"]) == (
            "recovery stored"
        )
        stored = set(
            db.session.execute(
                sa.select(WhoopRecord.type).where(WhoopRecord.whoop_id == member_sleep["id"])
            ).scalars()
        )
    assert stored == {"sleep", "recovery"}
    assert _calls(configured_app, linked)[calls.WEBHOOK] == 2


def test_cron_refreshes_only_unused_refresh_tokens(configured_app, linked):
    with configured_app.app_context():
        link = db.session.get(Link, linked)
        link.access_expires_at = utcnow() + timedelta(minutes=5)
        link.last_refresh_at = utcnow() - timedelta(hours=2)  # used recently: on demand
        db.session.commit()
        assert jobs.refresh_due() == 0
        link = db.session.get(Link, linked)
        link.last_refresh_at = utcnow() - timedelta(hours=25)  # unused for a day: keep alive
        db.session.commit()
        assert jobs.refresh_due() == 1


def test_daily_reconciliation_reads_cycles_until_a_full_one_is_due(
    configured_app, linked, sandbox, member
):
    run_jobs(configured_app, ("backfill",))
    before = _calls(configured_app, linked)
    with configured_app.app_context():
        counts = jobs.reconcile_link(linked)  # just backfilled, nothing missed: cycles only
    assert set(counts) == {"cycle"}
    after = _calls(configured_app, linked)
    assert after.get(calls.RECONCILE, 0) - before.get(calls.RECONCILE, 0) == 1
    with configured_app.app_context():
        window, full = jobs.reconcile_plan(linked, utcnow() + timedelta(days=3))
    assert full and window == timedelta(days=4)  # the stretch since the last full one


def test_full_reconciliation_finds_a_deletion_whose_webhook_was_missed(
    configured_app, linked, sandbox, member
):
    now = sandbox.state.clock.now_ms()
    gone = changes.create_workout(
        sandbox.state,
        member.user_id,
        {"start": gen.iso_ms(now - 7 * 3_600_000), "end": gen.iso_ms(now - 6 * 3_600_000)},
    )
    run_jobs(configured_app, ("backfill",))
    sandbox.state.set_member_webhooks(member.user_id, False)
    changes.delete_workout(sandbox.state, member.user_id, gone["id"])
    with configured_app.app_context():
        counts = jobs.reconcile_link(linked, full=True)
        deleted = db.session.scalar(
            sa.select(WhoopRecord.deleted).where(WhoopRecord.whoop_id == gone["id"])
        )
        live = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(WhoopRecord)
            .where(WhoopRecord.type == "workout", WhoopRecord.deleted.is_(False))
        )
    assert counts.get("workout_deleted") == 1 and deleted is True
    at_whoop = len(sandbox.state.data(member.user_id).workouts.records)
    assert live == at_whoop  # nothing else was taken for gone
