"""The rate budget against the sandbox: priorities when it runs short, and the forecast."""

from __future__ import annotations

import pytest
import requests
import sqlalchemy as sa

from tests.health.conftest import watch_warnings
from whoopadmin.connect.models import Link
from whoopadmin.destinations import service as destinations
from whoopadmin.destinations.models import Delivery
from whoopadmin.extensions import db
from whoopadmin.health import calls, jobs, service
from whoopadmin.setup.models import Connection
from whoopadmin.sync import service as sync
from whoopadmin.sync import tokens
from whoopadmin.sync.models import SyncRun
from whoopadmin.whoop.api import WhoopError


def sandbox_calls(app) -> int:
    """The API calls the sandbox counted for the app today (its own clock)."""
    return app.whoop_app.day_window[1]


def rate_limit_events(app) -> int:
    with app.app_context():
        return db.session.scalar(
            sa.select(sa.func.count(Delivery.id)).where(Delivery.event_type == "rate_limit_hit")
        )


def test_a_short_budget_serves_webhook_fetches_before_backfill_and_reconciliation(
    configured_app, linked, sandbox, member
):
    app = configured_app
    app.config["ALLOW_PRIVATE_DESTINATIONS"] = True
    workout = sandbox.state.data(member.user_id).workouts.records[0]
    with app.app_context():
        connection = db.session.scalar(sa.select(Connection))
        connection.rate_limit_per_day = 50
        db.session.commit()
        destinations.create_destination(
            "test", connection, "http://127.0.0.1:9/in", ["rate_limit_hit"]
        )
        assert service.silent_reconcile(connection) == [linked]  # room for it, now
        # Other work has spent 40 of the day's 50 calls: 80 %, the low-priority share.
        budget = sync.budget_for(connection)
        while budget.usage()["day_used"] < 40:
            assert budget.try_acquire() == 0.0
        assert service.silent_reconcile(connection) == []  # no room for more reconciling
    before = sandbox_calls(app)

    with app.app_context(), pytest.raises(WhoopError) as info:
        sync.sync_window(linked, sync.utcnow(), None, "reconcile")
    assert info.value.code == "rate_limited" and info.value.reserved
    with app.app_context(), pytest.raises(WhoopError):
        sync.sync_window(linked, sync.utcnow(), None, "backfill")
    assert sandbox_calls(app) == before  # neither sent a single request to WHOOP
    assert rate_limit_events(app) == 0  # WHOOP's limit was not hit: no rate_limit_hit
    with app.app_context():
        errors = db.session.scalars(sa.select(SyncRun.error).where(SyncRun.outcome == "error"))
        assert set(errors) == {"rate_limited"}

    # A webhook-driven fetch still goes through, on the reserve.
    with app.app_context():
        link = db.session.get(Link, linked)
        assert sync.apply_event(link, "workout.updated", workout["id"]) == "workout stored"
    assert sandbox_calls(app) == before + 1

    # Once the reserve is spent too, WHOOP's budget is used up for everyone.
    with app.app_context():
        budget = sync.budget_for(db.session.scalar(sa.select(Connection)))
        while budget.try_acquire() == 0.0:
            pass
        assert budget.usage()["day_used"] == 50
        link = db.session.get(Link, linked)
        with pytest.raises(WhoopError) as info:
            sync.apply_event(link, "workout.updated", workout["id"])
    assert not info.value.reserved
    assert sandbox_calls(app) == before + 1
    assert rate_limit_events(app) == 1


@pytest.fixture
def control(sandbox):
    def call(method: str, path: str, **kwargs):
        response = requests.request(method, f"{sandbox.url}/_sandbox{path}", timeout=10, **kwargs)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    yield call
    call("POST", "/clock", json={"reset": True})
    call("PATCH", "/config", json={"access_token_ttl": 3600})


def test_the_forecast_says_when_the_day_runs_out_and_it_does(
    configured_app, linked, sandbox, member, receiver, control
):
    """A day of 60 calls at WHOOP; 20 webhook fetches at 06:00, 12:00 and 18:00 (its clock).

    At 06:00 the forecast says the budget lasts until 18:00 of its day; the 61st call,
    at 18:00, is refused. The forecast is right to within 10 % of the time.
    """
    app = configured_app
    warnings = watch_warnings(app, receiver)
    client_id = app.whoop_app.client_id
    # WHOOP's headers then describe the day window, and its reset anchors ours; tokens
    # outlive the jumps of the sandbox clock.
    control("PATCH", f"/apps/{client_id}", json={"rate_limit_per_day": 60})
    control("PATCH", "/config", json={"access_token_ttl": 7 * 86_400})
    workout_id = sandbox.state.data(member.user_id).workouts.records[0]["id"]
    with app.app_context():
        db.session.scalar(sa.select(Connection)).rate_limit_per_day = 60
        db.session.commit()
        assert tokens.refresh_link(linked, "test", force=True) == "refreshed"
    now = sandbox.state.clock.now()
    control("POST", "/clock", json={"advance_seconds": 86_400 - now % 86_400 + 6 * 3600})

    def fetch(n: int) -> None:
        with app.app_context():
            link = db.session.get(Link, linked)
            for _ in range(n):
                sync.apply_event(link, "workout.updated", workout_id)

    def forecast() -> dict:
        with app.app_context():
            return service.budget_signal(db.session.scalar(sa.select(Connection))).details

    def evaluate() -> None:
        with app.app_context():
            jobs.evaluate_all()

    fetch(20)
    said = forecast()
    assert said["day_used"] == 20 and said["day_limit"] == 60
    assert said["day_elapsed"] == pytest.approx(6 * 3600, abs=120)
    assert said["runs_out_in"] == pytest.approx(12 * 3600, rel=0.02)
    assert said["members_supported"] == 0  # one member costs 80 calls a day at this rate
    evaluate()
    evaluate()
    (warning,) = warnings()
    assert warning["signal"] == "rate_budget" and warning["state"] == "warning"
    assert "runs_out" in warning["details"]["reasons"] and warning["next_step"]

    control("POST", "/clock", json={"advance_seconds": 6 * 3600})
    fetch(20)
    control("POST", "/clock", json={"advance_seconds": 6 * 3600})
    fetch(20)
    with pytest.raises(WhoopError) as info:
        fetch(1)
    assert info.value.code == "rate_limited"
    ran_out = forecast()
    assert ran_out["day_used"] == 60
    predicted = said["day_elapsed"] + said["runs_out_in"]
    assert abs(predicted - ran_out["day_elapsed"]) <= 0.1 * ran_out["day_elapsed"]

    evaluate()
    evaluate()
    assert [(w["state"], w["previous_state"]) for w in warnings()] == [
        ("warning", None),  # the first evaluation: a warning at once
        ("problem", "warning"),
    ]
    # Every call was counted, by purpose, exactly as the sandbox counted the API calls.
    with app.app_context():
        connection_id = db.session.scalar(sa.select(Connection.id))
        counted: dict[str, int] = {}
        for day in calls.by_day(connection_id, 2):  # today and yesterday: midnight-proof
            for purpose, n in day["purposes"].items():
                counted[purpose] = counted.get(purpose, 0) + n
    # The wizard's credentials check, the connect's code exchange and profile read, our
    # forced refresh, and the 60 fetches (the refused 61st never left).
    assert counted == {"probe": 1, "connect": 2, "refresh": 1, "webhook": 60}
    assert sandbox_calls(app) == 60
