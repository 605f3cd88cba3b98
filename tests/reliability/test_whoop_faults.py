"""WHOOP failing 30 % of requests (500s and timeouts): the sync still ends complete."""

import sqlalchemy as sa

from whoopadmin.extensions import db
from whoopadmin.sync import jobs
from whoopadmin.sync.models import WhoopRecord
from whoopadmin.whoop.api import WhoopError


def test_sync_completes_through_500s_and_timeouts(
    make_app, wizard_config, configured_app, linked, sandbox, member
):
    md = sandbox.state.data(member.user_id)
    expected = (
        {("cycle", str(r["id"])) for r in md.cycles.records}
        | {("sleep", r["id"]) for r in md.sleeps.records}
        | {("workout", r["id"]) for r in md.workouts.records}
        | {("recovery", r["sleep_id"]) for r in md.recoveries.records}
        | {("body_measurement", str(member.user_id))}
    )
    flaky = make_app(
        **dict(wizard_config, WHOOP_TIMEOUT=0.5, WHOOP_MAX_RETRIES=2, WHOOP_BACKOFF=0.01)
    )
    sandbox.state.set_faults(
        {"error_rate": 0.2, "timeout_rate": 0.1, "timeout_seconds": 1.5, "include_oauth": False}
    )
    attempts = 0
    try:
        # Each attempt is what RQ's retry would run again; storing is idempotent.
        while True:
            attempts += 1
            try:
                with flaky.app_context():
                    jobs.backfill_link(linked)
                break
            except WhoopError as exc:
                assert exc.retryable, exc.code
                assert attempts < 20, "never completed"
    finally:
        sandbox.state.set_faults({"error_rate": 0.0, "timeout_rate": 0.0})
    with configured_app.app_context():
        rows = db.session.execute(sa.select(WhoopRecord.type, WhoopRecord.whoop_id)).all()
    assert len(rows) == len(set(rows)) and set(rows) == expected
