"""``destinations.health.signals``: what the connection health panel shows about deliveries,
each signal produced by the state that causes it."""

from __future__ import annotations

from datetime import timedelta

from tests.destinations.support import seed
from tests.factories import make_connection
from whoopadmin.audit import utcnow
from whoopadmin.destinations import controls, health, recovery, service
from whoopadmin.destinations.models import Delivery, Destination
from whoopadmin.extensions import db

KEYS = {"name", "state", "message", "next_step", "link", "destination_id"}


def by_name(signals: list[dict]) -> dict[str, dict]:
    for signal in signals:
        assert set(signal) == KEYS and signal["state"] in ("ok", "warning", "problem")
        assert signal["message"] and signal["next_step"] and signal["link"].startswith("/")
    return {s["name"]: s for s in signals}


def test_no_destinations_no_signals_and_working_ones_are_ok(private_ok, receiver):
    app = private_ok
    with app.app_context():
        assert health.signals(make_connection().id) == []
    conn_id, _, _ = seed(app, receiver.url, environment="staging", hostname="s.acme.com")
    with app.app_context():
        (ok,) = health.signals(conn_id)
    assert by_name([ok]) == {"deliveries_ok": ok}
    assert ok["state"] == "ok" and ok["message"] == "1 destination: deliveries work."


def test_each_state_gives_its_signal(private_ok, receiver):
    app = private_ok
    conn_id, dest_id, _ = seed(app, receiver.url)
    with app.app_context():
        destination = db.session.get(Destination, dest_id)
        # Failing for two days: a warning that names the day it will be disabled.
        destination.failing_since = utcnow() - timedelta(days=2)
        db.session.commit()
        failing = by_name(health.signals(conn_id))["destination_failing"]
        assert failing["state"] == "warning" and failing["destination_id"] == dest_id
        disable_day = (destination.failing_since + timedelta(days=5)).strftime("%Y-%m-%d")
        assert disable_day in failing["message"]

        # Disabled by an operator: a warning, and its held events.
        controls.disable("test", destination)
        service.emit(conn_id, "auth.success", {"n": 1})
        signals = by_name(health.signals(conn_id))
        assert signals["destination_disabled"]["state"] == "warning"
        assert "by an operator" in signals["destination_disabled"]["message"]
        assert signals["deliveries_waiting"]["link"] == f"/destinations/{dest_id}/recovery"
        assert "1 delivery " in signals["deliveries_waiting"]["message"]
        assert "destination_failing" not in signals  # disabled says more

        # Enabled, the held one still waits; a recovery is then running.
        controls.enable("test", destination)
        signals = by_name(health.signals(conn_id))
        assert signals["deliveries_waiting"]["state"] == "warning"
        assert "destination_disabled" not in signals
        recovery.start("test", destination, utcnow() - timedelta(hours=1))
        running = by_name(health.signals(conn_id))["recovery_running"]
        assert running["state"] == "ok" and "0 of 1 done" in running["message"]

        # A rotation's overlap.
        service.rotate_secret("test", destination)
        overlap = by_name(health.signals(conn_id))["secret_overlap"]
        assert overlap["state"] == "ok" and "end the overlap" in overlap["next_step"]
        controls.end_overlap("test", destination)
        assert "secret_overlap" not in by_name(health.signals(conn_id))


def test_signals_cost_a_fixed_number_of_queries(private_ok, receiver):
    """The dashboard calls this per connection: three queries however many destinations."""
    import sqlalchemy as sa

    app = private_ok
    conn_id, _, _ = seed(app, receiver.url)
    with app.app_context():
        from whoopadmin.setup.models import Connection

        conn = db.session.get(Connection, conn_id)
        for i in range(4):
            service.create_destination("test", conn, f"{receiver.url}/{i}", ["deauth"])
        db.session.add(
            Delivery(
                destination_id=1,
                connection_id=conn_id,
                event_id="evt_x",
                event_type="deauth",
                payload="{}",
                status="held",
                history=[],
            )
        )
        db.session.commit()
        db.session.expire_all()
        statements = []

        def count(conn, cursor, statement, *args):
            statements.append(statement)

        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            health.signals(conn_id)
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
        assert len(statements) == 3
