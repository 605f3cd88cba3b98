"""Silent webhooks against the sandbox: a member's webhooks switched off while data changes."""

from __future__ import annotations

from datetime import timedelta

import requests
import sqlalchemy as sa
from rq import Queue

from tests.conftest import run_jobs
from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.health import jobs, service
from whoopadmin.health.models import ConnectionSignal, MissedWebhookCount
from whoopadmin.redisconn import get_redis
from whoopadmin.sandbox import changes
from whoopadmin.setup.models import Connection
from whoopadmin.sync import jobs as sync_jobs


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def add_workout(sandbox, member, hours_ago: float = 3) -> dict:
    start = utcnow() - timedelta(hours=hours_ago)
    return changes.create_workout(
        sandbox.state,
        member.user_id,
        {"start": iso(start), "end": iso(start + timedelta(minutes=40))},
    )


def switch_webhooks(sandbox, member, on: bool) -> None:
    """The sandbox's control API: a member's webhooks on or off."""
    response = requests.patch(
        f"{sandbox.url}/_sandbox/members/{member.user_id}", json={"webhooks": on}, timeout=10
    )
    assert response.status_code == 200 and response.json()["webhooks"] is on, response.text


def evaluate(app, now=None) -> dict:
    with app.app_context():
        return jobs.evaluate_all(now)


def webhook_state(app) -> tuple[str, dict]:
    with app.app_context():
        row = db.session.scalar(
            sa.select(ConnectionSignal).where(ConnectionSignal.signal == "webhooks_silent")
        )
        return row.state, dict(row.details)


def missed(app) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(MissedWebhookCount.record_type, MissedWebhookCount.count)
        ).all()
        return dict(rows)


def test_silent_webhooks_are_flagged_delivered_once_and_clear_themselves(
    live, warnings_to, sandbox
):
    member = sandbox.state.create_member(days=6)
    link_id = live.connect(member)
    run_jobs(live.app, ("backfill",))
    assert missed(live.app) == {}  # the backfill's records predate the link: none counts

    # Webhooks work: a new workout is announced and fetched.
    add_workout(sandbox, member, hours_ago=5)
    live.delivered()
    assert evaluate(live.app)["silent"] == 0
    assert webhook_state(live.app)[0] == "ok"
    assert warnings_to() == []

    # WHOOP stops sending this member's webhooks while their data changes.
    switch_webhooks(sandbox, member, False)
    workout = add_workout(sandbox, member, hours_ago=2)
    main = [s for s in sandbox.state.data(member.user_id).sleeps.records if not s["nap"]]
    # Last night's main sleep but one: rescoring it changes the sleep and its recovery.
    sleep = sorted(main, key=lambda s: s["start"])[-2]
    changes.update_sleep(sandbox.state, member.user_id, sleep["id"], {"score_state": "SCORED"})
    live.delivered()
    with live.app.app_context():
        sync_jobs.reconcile_link(link_id, full=True)
    assert missed(live.app) == {"workout": 1, "sleep": 1, "recovery": 1}

    assert evaluate(live.app)["silent"] == 1
    state, details = webhook_state(live.app)
    assert state == "problem" and details["why"] == ["missed"]
    (event,) = warnings_to()
    assert event["signal"] == "webhooks_silent" and event["state"] == "problem"
    assert event["previous_state"] == "ok" and event["next_step"]

    # The next passes change nothing and deliver nothing more.
    evaluate(live.app)
    evaluate(live.app)
    assert len(warnings_to()) == 1

    # Reconciliation of the silent connection runs more often; the causes are checked.
    with live.app.app_context():
        queued = Queue("sync", connection=get_redis(live.app)).job_ids
    assert any(j.startswith(f"reconcile-silent-{link_id}-") for j in queued), queued
    run_jobs(live.app, ("domains", "sync"))
    _, details = webhook_state(live.app)
    page = live.client.get("/health/production").get_data(as_text=True)
    causes = {c["key"]: c["status"] for c in service_causes(live.app)}
    assert causes == {
        "url": "ok",  # a signed test event arrived through the public URL
        "certificate": "n/a",  # plain HTTP here
        "secret": "ok",
        "registration": "unknown",
    }
    assert 'data-cause="registration"' in page and "model version v2" in page
    dashboard = live.client.get("/").get_data(as_text=True)
    assert 'data-signal="webhooks_silent" data-state="problem"' in dashboard
    assert "3 changes arrived only by reconciliation" in dashboard

    # Webhooks come back: the next change is announced, and the flag clears by itself.
    switch_webhooks(sandbox, member, True)
    changes.update_workout(sandbox.state, member.user_id, workout["id"], {})
    live.delivered()
    assert evaluate(live.app)["silent"] == 0
    assert webhook_state(live.app)[0] == "ok"
    events = warnings_to()
    assert [(e["state"], e["previous_state"]) for e in events] == [
        ("problem", "ok"),
        ("ok", "problem"),
    ]
    assert missed(live.app) == {"workout": 1, "sleep": 1, "recovery": 1}


def service_causes(app) -> list[dict]:
    with app.app_context():
        connection = db.session.scalar(sa.select(Connection))
        return service.webhook_signal(connection).details["causes"]


def test_no_webhook_for_many_expected_gaps_flags_silence(live, warnings_to, sandbox):
    member = sandbox.state.create_member(days=4)
    link_id = live.connect(member)
    for hours in (9, 7, 5):  # three announced changes: about 3 webhooks a day
        add_workout(sandbox, member, hours_ago=hours)
    live.delivered()
    now = utcnow()
    evaluate(live.app, now)
    _, details = webhook_state(live.app)
    assert details["rate_per_hour"] == 0.125
    assert details["threshold"] == 32 * 3600  # 4 expected gaps of 8 h (over the 6 h floor)

    # One change arrives only by polling: members are active, their webhooks are not.
    switch_webhooks(sandbox, member, False)
    add_workout(sandbox, member, hours_ago=3)
    with live.app.app_context():
        sync_jobs.reconcile_link(link_id, full=True)
    assert missed(live.app) == {"workout": 1}
    evaluate(live.app, now + timedelta(hours=31))
    assert webhook_state(live.app)[0] == "ok"
    evaluate(live.app, now + timedelta(hours=33))
    state, details = webhook_state(live.app)
    assert state == "problem" and details["why"] == ["no_webhooks"]
    assert [e["state"] for e in warnings_to()] == ["problem"]

    # A later pass cannot unlearn it: only a webhook clears the flag.
    evaluate(live.app, now + timedelta(days=30))
    assert webhook_state(live.app)[0] == "problem"
    switch_webhooks(sandbox, member, True)
    add_workout(sandbox, member, hours_ago=1)
    live.delivered()
    evaluate(live.app)
    assert webhook_state(live.app)[0] == "ok"
    assert [e["state"] for e in warnings_to()] == ["problem", "ok"]


def test_an_idle_connection_is_not_silent(live, sandbox):
    """No webhook for days, but nothing changed at WHOOP either: no flag."""
    member = sandbox.state.create_member(days=4)
    live.connect(member)
    add_workout(sandbox, member, hours_ago=3)
    live.delivered()
    now = utcnow()
    evaluate(live.app, now)
    evaluate(live.app, now + timedelta(days=5))
    assert webhook_state(live.app)[0] == "ok"
