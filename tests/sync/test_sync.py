"""Backfill, webhook-driven fetches, edits and deletions against the sandbox over HTTP."""

import threading
import time
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa
from werkzeug.serving import make_server

from tests.conftest import run_jobs
from whoopadmin.audit import utcnow
from whoopadmin.connect.models import Link
from whoopadmin.extensions import db
from whoopadmin.sandbox import changes
from whoopadmin.sync import jobs
from whoopadmin.sync.models import Indicator, SyncRun, WhoopRecord
from whoopadmin.webhooks.models import WebhookEvent


def _records(app, type_=None, deleted=False):
    with app.app_context():
        query = sa.select(WhoopRecord.type, WhoopRecord.whoop_id).where(
            WhoopRecord.deleted.is_(deleted)
        )
        if type_:
            query = query.where(WhoopRecord.type == type_)
        return set(db.session.execute(query).all())


def _indicator(app, record_type, whoop_id, name):
    with app.app_context():
        return db.session.scalar(
            sa.select(Indicator.value).where(
                Indicator.record_type == record_type,
                Indicator.whoop_id == whoop_id,
                Indicator.name == name,
            )
        )


def _sandbox_ids(sandbox, user_id, since):
    """What the sandbox holds for the member since ``since`` (all of a 10-day member)."""
    md = sandbox.state.data(user_id)
    return (
        {("cycle", str(r["id"])) for r in md.cycles.records}
        | {("sleep", r["id"]) for r in md.sleeps.records}
        | {("workout", r["id"]) for r in md.workouts.records}
        | {("recovery", r["sleep_id"]) for r in md.recoveries.records}
    )


def test_backfill_stores_every_record_once(configured_app, linked, sandbox, member):
    run_jobs(configured_app, ("backfill",))
    expected = _sandbox_ids(sandbox, member.user_id, utcnow() - timedelta(days=30))
    stored = _records(configured_app) - {("body_measurement", str(member.user_id))}
    assert stored == expected
    md = sandbox.state.data(member.user_id)
    scored = next(r for r in md.recoveries.records if r["score_state"] == "SCORED")
    assert (
        _indicator(configured_app, "recovery", scored["sleep_id"], "recovery_score")
        == (scored["score"]["recovery_score"])
    )
    sleep = next(r for r in md.sleeps.records if r["score_state"] == "SCORED")
    rem = sleep["score"]["stage_summary"]["total_rem_sleep_time_milli"] / 60000
    assert _indicator(configured_app, "sleep", sleep["id"], "sleep_rem_time") == pytest.approx(rem)
    with configured_app.app_context():
        runs = db.session.scalars(sa.select(SyncRun)).all()
        assert {r.type for r in runs} >= {"cycle", "sleep", "recovery", "workout"}
        assert all(r.outcome == "ok" and r.reason == "backfill" for r in runs)
        indicators = db.session.scalar(sa.select(sa.func.count(Indicator.id)))
    # A second backfill stores nothing new and changes nothing.
    with configured_app.app_context():
        jobs.backfill_link(linked)
        assert db.session.scalar(sa.select(sa.func.count(Indicator.id))) == indicators
        assert db.session.scalar(sa.select(sa.func.count(WhoopRecord.id))) == len(stored) + 1


def test_backfill_survives_sandbox_faults(
    make_app, wizard_config, configured_app, linked, sandbox, member
):
    sandbox.state.set_faults({"error_rate": 0.3, "include_oauth": False})
    try:
        flaky = make_app(WHOOP_MAX_RETRIES=8, WHOOP_BACKOFF=0.01, **wizard_config)
        with flaky.app_context():
            jobs.backfill_link(linked)
    finally:
        sandbox.state.set_faults({"error_rate": 0.0})
    expected = _sandbox_ids(sandbox, member.user_id, utcnow() - timedelta(days=30))
    assert _records(configured_app) - {("body_measurement", str(member.user_id))} == expected


def test_inactive_link_is_not_synced(configured_app, linked):
    with configured_app.app_context():
        db.session.get(Link, linked).status = "revoked"
        db.session.commit()
        assert jobs.backfill_link(linked) == {}
    assert _records(configured_app) == set()


@pytest.fixture
def served(configured_app, sandbox):
    """whoopadmin on a real port, registered as the sandbox app's webhook URL."""
    server = make_server("127.0.0.1", 0, configured_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client_id = configured_app.whoop_app.client_id
    url = f"http://127.0.0.1:{server.server_port}/hooks/whoop/push/{client_id}"
    configured_app.whoop_app.webhook_urls.append(url)
    yield url
    configured_app.whoop_app.webhook_urls.remove(url)
    server.shutdown()
    server.server_close()
    thread.join(5)


def _delivered(sandbox):
    response = requests.get(f"{sandbox.url}/_sandbox/webhooks?wait=1", timeout=30)
    response.close()


def _event_statuses(app):
    with app.app_context():
        return [(e.type, e.status) for e in db.session.scalars(sa.select(WebhookEvent))]


def test_webhooks_drive_fetch_edit_and_delete(configured_app, linked, sandbox, member, served):
    run_jobs(configured_app, ("backfill",))
    md = sandbox.state.data(member.user_id)
    # A new workout: WHOOP sends workout.updated, we fetch that one object.
    start = utcnow() - timedelta(hours=3)
    workout = changes.create_workout(
        sandbox.state,
        member.user_id,
        {
            "start": start.isoformat().replace("+00:00", "Z"),
            "end": (start + timedelta(minutes=30)).isoformat().replace("+00:00", "Z"),
        },
    )
    _delivered(sandbox)
    run_jobs(configured_app, ("webhooks",))
    assert ("workout", workout["id"]) in _records(configured_app, "workout")
    assert ("workout.updated", "processed") in _event_statuses(configured_app)

    # An edit: the sleep is rescored; the stored record and its indicators follow.
    sleep = next(r for r in md.sleeps.records if r["score_state"] == "SCORED" and not r["nap"])
    changes.update_sleep(
        sandbox.state, member.user_id, sleep["id"], {"score_state": "PENDING_SCORE"}
    )
    _delivered(sandbox)
    run_jobs(configured_app, ("webhooks",))
    with configured_app.app_context():
        stored = db.session.scalar(
            sa.select(WhoopRecord).where(
                WhoopRecord.whoop_id == sleep["id"], WhoopRecord.type == "sleep"
            )
        )
        assert stored.score_state == "PENDING_SCORE"
    assert _indicator(configured_app, "sleep", sleep["id"], "sleep_performance") is None
    assert _indicator(configured_app, "recovery", sleep["id"], "recovery_score") is None

    # A deletion: the sleep and its recovery are marked deleted, their indicators dropped.
    changes.delete_sleep(sandbox.state, member.user_id, sleep["id"])
    _delivered(sandbox)
    run_jobs(configured_app, ("webhooks",))
    deleted = _records(configured_app, deleted=True)
    assert ("sleep", sleep["id"]) in deleted and ("recovery", sleep["id"]) in deleted
    assert _indicator(configured_app, "sleep", sleep["id"], "sleep_duration") is None
    statuses = _event_statuses(configured_app)
    assert all(status == "processed" for _, status in statuses), statuses


def test_duplicate_webhooks_processed_once(configured_app, linked, sandbox, member, served):
    sandbox.state.set_faults({"webhook_duplicate_rate": 1.0})
    try:
        md = sandbox.state.data(member.user_id)
        sleep = next(r for r in md.sleeps.records if not r["nap"])
        changes.update_sleep(sandbox.state, member.user_id, sleep["id"], {"score_state": "SCORED"})
        _delivered(sandbox)
    finally:
        sandbox.state.set_faults({"webhook_duplicate_rate": 0.0})
    run_jobs(configured_app, ("webhooks",))
    statuses = _event_statuses(configured_app)
    assert sorted(statuses) == [("recovery.updated", "processed"), ("sleep.updated", "processed")]


def test_refetch_404_means_deleted(configured_app, linked, sandbox, member):
    from whoopadmin.sync import service

    run_jobs(configured_app, ("backfill",))
    md = sandbox.state.data(member.user_id)
    workout = md.workouts.records[0]
    with sandbox.state.lock:
        md.remove_workout(workout["id"]) if hasattr(md, "remove_workout") else None
    if hasattr(md, "remove_workout"):
        with configured_app.app_context():
            link = db.session.get(Link, linked)
            assert service.apply_event(link, "workout.updated", workout["id"]).startswith(
                "not found"
            )
        assert ("workout", workout["id"]) in _records(configured_app, deleted=True)
    else:
        pytest.skip("the sandbox cannot remove a workout silently")


def test_reconcile_due_is_staggered(configured_app, linked):
    with configured_app.app_context():
        hour = linked % 24
        now = utcnow().replace(hour=hour)
        assert jobs.reconcile_due(now) == 1
        assert jobs.reconcile_due(now.replace(hour=(hour + 1) % 24)) == 0
    run_jobs(configured_app, ("sync",))
    with configured_app.app_context():
        reasons = set(db.session.scalars(sa.select(SyncRun.reason)))
    assert reasons == {"reconcile"}


def test_low_budget_paces_the_backfill(
    make_app, wizard_config, configured_app, linked, sandbox, member
):
    """5 requests per (2-second) window: the backfill waits for budget and completes."""
    from whoopadmin.setup.models import Connection

    with configured_app.app_context():
        connection = db.session.scalar(sa.select(Connection))
        connection.rate_limit_per_minute = 5
        db.session.commit()
    paced = make_app(WHOOP_RATE_MINUTE_SECONDS=2, **wizard_config)
    started = time.monotonic()
    with paced.app_context():
        counts = jobs.backfill_link(linked)
        usage = service_budget(paced)
    elapsed = time.monotonic() - started
    assert sum(counts.values()) > 5  # more records than one window's requests could fetch
    assert elapsed >= 2.0  # it had to wait for at least one new window
    assert usage["minute_limit"] == 5
    expected = _sandbox_ids(sandbox, member.user_id, utcnow() - timedelta(days=30))
    assert _records(configured_app) - {("body_measurement", str(member.user_id))} == expected


def service_budget(app):
    from whoopadmin.setup.models import Connection
    from whoopadmin.sync.service import budget_for

    return budget_for(db.session.scalar(sa.select(Connection))).usage()


def test_a_failing_webhook_in_a_batch_is_retried_alone(
    make_app, wizard_config, configured_app, linked, sandbox, member
):
    """Injected: every WHOOP API call answers 500 while a batch of two webhooks runs."""
    from rq.job import Job

    from tests.helpers import post_webhook
    from whoopadmin.jobs import get_queue

    flaky = make_app(**dict(wizard_config, WHOOP_MAX_RETRIES=0, WHOOP_BACKOFF=0.01))
    flaky.whoop_app = configured_app.whoop_app
    client, secret = flaky.test_client(), configured_app.whoop_app.client_secret
    sleep_id = next(r["id"] for r in sandbox.state.data(member.user_id).sleeps.records)
    run_jobs(configured_app, ("backfill",))
    for kind in ("updated", "deleted"):  # a fetch fails; a deletion needs no WHOOP call
        event = {"user_id": member.user_id, "id": sleep_id, "type": f"sleep.{kind}"}
        response = post_webhook(client, secret, dict(event, trace_id=f"batch-{kind}"))
        assert response.json == {"status": "accepted"}
    sandbox.state.set_faults({"error_rate": 1.0, "include_oauth": False})
    try:
        run_jobs(flaky, ("webhooks",))  # one process_events job holding both
    finally:
        sandbox.state.set_faults({"error_rate": 0.0})

    def events():
        with flaky.app_context():
            rows = db.session.execute(
                sa.select(WebhookEvent.trace_id, WebhookEvent.id, WebhookEvent.status)
                .add_columns(WebhookEvent.attempts)
                .order_by(WebhookEvent.id)
            ).all()
            return {trace: tuple(rest) for trace, *rest in rows}

    failed_id = events()["batch-updated"][0]
    assert [v[1:] for v in events().values()] == [("received", 1), ("processed", 1)]
    with flaky.app_context():
        queue = get_queue("webhooks")
        assert queue.jobs == []  # not run again at once: RQ's first retry interval first
        registry = queue.scheduled_job_registry
        assert registry.get_job_ids() == [f"webhook-{failed_id}"]
        job = Job.fetch(f"webhook-{failed_id}", connection=queue.connection)
        assert job.args == (failed_id,) and job.retries_left == 4
        registry.remove(job.id)
        queue.enqueue_job(job)  # its time has come
    run_jobs(flaky, ("webhooks",))
    assert [v[1:] for v in events().values()] == [("processed", 2), ("processed", 1)]
