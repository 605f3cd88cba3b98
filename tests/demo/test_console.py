"""The demo console reports what a newcomer wants to see happen, whichever process did it."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from tests.conftest import run_jobs
from tests.helpers import post_webhook
from whoopadmin.demokit.console import Console, EventWatcher
from whoopadmin.extensions import db
from whoopadmin.jobs import get_queue
from whoopadmin.setup.models import Connection


def test_the_watcher_reports_links_webhooks_dns_and_failed_jobs(
    configured_app, end_user, new_session, member
):
    printed: list[str] = []
    watcher = EventWatcher(configured_app, Console(echo=printed.append))
    assert watcher.poll(report=False) is not None  # where things stand: nothing old is told

    assert end_user.connect(new_session(reference_id="member-7")).status_code == 303
    watcher.poll()
    assert printed[-1].endswith(
        f"link connected: WHOOP member {member.user_id} (reference member-7)"
    )

    client = configured_app.test_client()
    event = {
        "user_id": member.user_id,
        "id": str(uuid.uuid4()),
        "type": "workout.deleted",
        "trace_id": uuid.uuid4().hex,
    }
    assert post_webhook(client, configured_app.whoop_app.client_secret, event).status_code == 200
    run_jobs(configured_app, ("webhooks",))
    lines = watcher.poll()
    assert any(f"workout.deleted for WHOOP member {member.user_id}" in line for line in lines)

    with configured_app.app_context():
        get_queue("sync").enqueue("whoopadmin.no_such_module.job")
    run_jobs(configured_app, ("sync",))
    lines = watcher.poll()
    assert any("job failed: whoopadmin.no_such_module.job on sync" in line for line in lines)

    with configured_app.app_context():
        connection = db.session.scalar(sa.select(Connection))
        connection.status = "misconfigured"
        db.session.commit()
    assert watcher.poll() == ["DNS of whoop.acme.test: misconfigured"]
    assert watcher.poll() == []  # each event once
    assert all(line[2] == ":" and line[5] == ":" for line in printed)  # HH:MM:SS first
