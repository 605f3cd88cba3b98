"""Missed-webhook accounting: what counts, what does not, and where it shows."""

from __future__ import annotations

import requests

from tests.conftest import run_jobs
from tests.health.test_silent import add_workout, evaluate, missed, switch_webhooks
from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.health.models import WebhookActivity
from whoopadmin.sandbox import changes
from whoopadmin.sync import jobs as sync_jobs


def test_only_unannounced_changes_after_the_link_connected_count(live, sandbox):
    member = sandbox.state.create_member(days=5)
    link_id = live.connect(member)
    run_jobs(live.app, ("backfill",))
    with live.app.app_context():
        sync_jobs.reconcile_link(
            link_id, full=True
        )  # months of old records, none announced: none count
    assert missed(live.app) == {}

    announced = add_workout(sandbox, member, hours_ago=6)
    live.delivered()
    switch_webhooks(sandbox, member, False)
    quiet = add_workout(sandbox, member, hours_ago=4)
    # A change younger than the grace period may still have its webhook on the way.
    live.app.config["HEALTH_MISSED_GRACE_SECONDS"] = 900
    with live.app.app_context():
        sync_jobs.reconcile_link(link_id, full=True)
    assert missed(live.app) == {}
    # Judged at once: a new version found only by reconciliation counts. The announced
    # workout's new version changed within the clock allowance (5 min) of its webhook:
    # that webhook announced it.
    live.app.config["HEALTH_MISSED_GRACE_SECONDS"] = 0
    changes.update_workout(sandbox.state, member.user_id, quiet["id"], {})
    changes.update_workout(sandbox.state, member.user_id, announced["id"], {})
    with live.app.app_context():
        sync_jobs.reconcile_link(link_id, full=True)
        sync_jobs.reconcile_link(link_id, full=True)  # nothing new: nothing more
    assert missed(live.app) == {"workout": 1}
    # Without the allowance, its next version is a miss too.
    live.app.config["HEALTH_ANNOUNCE_SKEW_SECONDS"] = 0
    changes.update_workout(sandbox.state, member.user_id, announced["id"], {})
    with live.app.app_context():
        sync_jobs.reconcile_link(link_id, full=True)
    assert missed(live.app) == {"workout": 2}
    with live.app.app_context():
        activity = db.session.get(WebhookActivity, live.connection_id())
        assert activity.missed_since_webhook == 2
        assert activity.last_change_at is not None

    # The health page and /metrics show the counts.
    page = live.client.get("/health/production").get_data(as_text=True)
    assert f"<tr><td>{utcnow().date()}</td><td>0</td><td>0</td><td>2</td></tr>" in page
    metrics = live.app.test_client().get("/metrics").get_data(as_text=True)
    assert 'whoopadmin_missed_webhooks_total{environment="production",type="workout"} 2' in metrics
    assert 'whoopadmin_whoop_calls_today{environment="production",purpose="reconcile"}' in metrics
    assert 'whoopadmin_whoop_calls_today{environment="production",purpose="backfill"}' in metrics
    evaluate(live.app)
    metrics = live.app.test_client().get("/metrics").get_data(as_text=True)
    assert 'whoopadmin_health_signal{environment="production",signal="webhooks_silent"} 0' in (
        metrics
    )
    assert 'whoopadmin_health_signal{environment="production",signal="member_cap"} 0' in metrics
    assert 'whoopadmin_rate_budget_used_ratio{environment="production",window="day"}' in metrics


def test_a_webhook_stored_but_not_yet_processed_announced_its_record(live, sandbox):
    """Reconciliation may store a record before its webhook's job runs: not a miss."""
    member = sandbox.state.create_member(days=3)
    link_id = live.connect(member)
    add_workout(sandbox, member, hours_ago=2)
    requests.get(f"{sandbox.url}/_sandbox/webhooks?wait=1", timeout=30).close()  # stored
    with live.app.app_context():
        sync_jobs.reconcile_link(link_id, full=True)  # before any webhook job ran
    assert missed(live.app) == {}
