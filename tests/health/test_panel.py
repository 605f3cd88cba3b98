"""The connection health panel and page, the minute budget's warning, and the settings."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.factories import make_user
from tests.health.conftest import watch_warnings
from tests.helpers import AuthActions
from tests.whoop.support import wait_for_fresh_window
from whoopadmin import create_app
from whoopadmin.config import ConfigError
from whoopadmin.extensions import db
from whoopadmin.health import budget, jobs
from whoopadmin.redisconn import get_redis
from whoopadmin.setup.models import Connection
from whoopadmin.sync.service import budget_for


def test_the_panel_shows_each_signal_with_its_state(configured_app, operator_client):
    page = operator_client.get("/").get_data(as_text=True)
    assert 'data-testid="health-panel" data-state="ok"' in page
    for signal in ("webhooks_silent", "rate_budget", "member_cap", "deliveries"):
        assert f'data-signal="{signal}" data-state="ok"' in page
    assert "0 of 10 members linked." in page and "No destinations: nothing is delivered." in page
    health = operator_client.get("/health/production")
    assert health.status_code == 200
    assert b'data-testid="forecast"' in health.data and b'data-testid="calls"' in health.data
    assert configured_app.whoop_app.client_secret.encode() not in health.data
    assert operator_client.get("/health/nope").status_code == 404
    assert operator_client.get("/health/%00").status_code in (400, 404)


def test_support_staff_see_the_health_page_anonymous_visitors_do_not(configured_app):
    anonymous = configured_app.test_client()
    assert anonymous.get("/health/production").status_code == 302
    with configured_app.app_context():
        make_user("support")
    support = configured_app.test_client()
    AuthActions(support).login("support@example.com", "support-password")
    assert support.get("/health/production").status_code == 200


def test_most_of_a_minutes_budget_warns_once(configured_app, operator_client, receiver):
    warnings = watch_warnings(configured_app, receiver)
    with configured_app.app_context():
        connection = db.session.scalar(sa.select(Connection))
        shared = budget_for(connection)
        wait_for_fresh_window(get_redis(), 60, 10)  # the burst within one minute
        for _ in range(85):  # a burst: 85 of the minute's 100
            assert shared.try_acquire() == 0.0
        jobs.evaluate_all()
        jobs.evaluate_all()
    (event,) = warnings()
    assert event["signal"] == "rate_budget" and event["state"] == "warning"
    assert event["details"]["reasons"] == ["minute"] and event["details"]["minute_peak"] == 85
    assert "per-minute budget" in event["next_step"]
    page = operator_client.get("/").get_data(as_text=True)
    assert 'data-signal="rate_budget" data-state="warning"' in page
    assert "85/100 a minute" in page


def test_a_warned_budget_clears_only_well_below_the_threshold():
    fc = budget.forecast(
        {
            "day_used": 0,
            "day_limit": 10_000,
            "day_resets_in": 40_000,
            "day_seconds": 86_400,
            "minute_used": 75,
            "minute_prev_used": 0,
            "minute_limit": 100,
            "paused_until": None,
        },
        members=1,
    )
    assert budget.state(fc, 0.8, previous="ok") == ("ok", [])
    assert budget.state(fc, 0.8, previous="warning") == ("warning", ["minute"])


def test_the_forecast_from_numbers():
    """Half the day gone, a quarter of the budget used: the rate lasts the day."""
    usage = {
        "day_used": 2_500,
        "day_limit": 10_000,
        "day_resets_in": 43_200,
        "day_seconds": 86_400,
        "minute_used": 3,
        "minute_prev_used": 7,
        "minute_limit": 100,
        "paused_until": None,
    }
    fc = budget.forecast(usage, members=10)
    assert fc["projected"] == 5_000 and fc["runs_out_in"] is None
    assert fc["per_member"] == 500 and fc["members_supported"] == 20
    assert fc["minute_peak"] == 7
    # Three quarters used by noon: it runs out at 16:00 (4 h from now).
    fc = budget.forecast(dict(usage, day_used=7_500), members=10)
    assert fc["runs_out_in"] == pytest.approx(4 * 3600)
    assert budget.state(fc, 0.8) == ("warning", ["runs_out"])
    # Used up, or paused by a 429: a problem.
    assert budget.state(budget.forecast(dict(usage, day_used=10_000), 10), 0.8)[0] == "problem"
    paused = budget.forecast(dict(usage, paused_until=1e10), 10)
    assert budget.state(paused, 0.8) == ("problem", ["paused"])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HEALTH_BUDGET_RESERVE", 0.95),
        ("HEALTH_BUDGET_WARN", "lots"),
        ("HEALTH_SILENT_AFTER_SECONDS", 0),
        ("HEALTH_MISSED_SILENT_COUNT", float("nan")),
        ("HEALTH_MEMBER_CAP_WARN", -1),
    ],
)
def test_unusable_health_settings_stop_the_start(tmp_path, name, value):
    with pytest.raises(ConfigError, match=f"WHOOPADMIN_{name} must be a number"):
        create_app(
            {
                "TESTING": True,
                "INSTANCE_PATH": str(tmp_path),
                "SECRET_KEY": "x",
                "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
                name: value,
            }
        )


def test_the_panel_shows_a_destination_disabled_after_days_of_failures(
    configured_app, operator_client
):
    from whoopadmin.audit import utcnow
    from whoopadmin.destinations.models import Destination

    with configured_app.app_context():
        connection = db.session.scalar(sa.select(Connection))
        destination = Destination(
            connection_id=connection.id,
            url="https://hooks.acme.test/whoop",
            events=["sleep"],
            disabled_at=utcnow(),
            disabled_reason="failing",
            failing_since=utcnow(),
        )
        destination.signing_secret = "whsec_" + "A" * 43
        db.session.add(destination)
        db.session.commit()
        destination_id = destination.id
    page = operator_client.get("/").get_data(as_text=True)
    assert 'data-testid="health-panel" data-state="problem"' in page
    assert 'data-signal="deliveries" data-state="problem"' in page
    assert "https://hooks.acme.test/whoop was disabled on" in page
    assert f'href="/destinations/{destination_id}"' in page
