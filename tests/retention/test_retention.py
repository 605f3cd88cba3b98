"""Retention: old rows go in bounded batches, recent and unfinished ones stay."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from tests.factories import make_connection, make_link
from whoopadmin.audit import utcnow
from whoopadmin.destinations.models import Delivery, Destination
from whoopadmin.extensions import db
from whoopadmin.retention import service
from whoopadmin.retention.models import DataPolicy
from whoopadmin.sync.models import Indicator, WhoopRecord
from whoopadmin.webhooks.models import WebhookEvent


def count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_retention_removes_old_rows_in_batches(app):
    with app.app_context():
        connection = make_connection()
        link = make_link(connection, whoop_user_id=77, reference_id="r")
        destination = Destination(connection_id=connection.id, url="https://x.test/", events=[])
        db.session.add(destination)
        db.session.flush()
        now = utcnow()
        old, recent = now - timedelta(days=40), now - timedelta(days=2)
        for n in range(25):
            for when, tag in ((old, "old"), (recent, "new")):
                db.session.add(
                    WhoopRecord(
                        link_id=link.id, type="sleep", whoop_id=f"{tag}-{n}", start=when, raw={}
                    )
                )
                db.session.add(
                    Indicator(
                        link_id=link.id,
                        record_type="sleep",
                        whoop_id=f"{tag}-{n}",
                        name="sleep_duration",
                        value=1.0,
                        unit="min",
                        start=when,
                    )
                )
                db.session.add(
                    WebhookEvent(
                        connection_id=connection.id,
                        trace_id=f"{tag}-{n}",
                        type="sleep.updated",
                        status="processed",
                        received_at=when,
                        body={},
                    )
                )
                db.session.add(
                    Delivery(
                        destination_id=destination.id,
                        connection_id=connection.id,
                        event_id=f"evt_{tag}{n}",
                        event_type="sleep",
                        payload="{}",
                        status="delivered",
                        created_at=when,
                        history=[],
                    )
                )
        # Unfinished rows stay, however old.
        db.session.add(
            WebhookEvent(
                connection_id=connection.id,
                trace_id="waiting",
                type="sleep.updated",
                status="received",
                received_at=old,
                body={},
            )
        )
        db.session.add(
            Delivery(
                destination_id=destination.id,
                connection_id=connection.id,
                event_id="evt_p",
                event_type="sleep",
                payload="{}",
                status="pending",
                created_at=old,
                history=[],
            )
        )
        db.session.commit()
        service.save_policy("test", connection, raw_days=30, webhook_days=30, delivery_days=30)

        # Batches of 10, at most 2 per run: 20 of the 25 old rows go, and the run says so.
        first = service.enforce(connection, batch=10, max_batches=2)
        assert first == {
            "raw_objects": 20,
            "indicators": 20,
            "webhook_events": 20,
            "deliveries": 20,
            "complete": False,
        }
        second = service.enforce(connection, batch=10, max_batches=2)
        assert second["raw_objects"] == 5 and second["deliveries"] == 5 and second["complete"]
        assert count(WhoopRecord) == 25 and count(Indicator) == 25
        assert count(WebhookEvent) == 26 and count(Delivery) == 26
        row = db.session.get(DataPolicy, connection.id)
        assert row.last_run_counts == second and row.last_run_at is not None
        # The defaults keep raw objects forever.
        other = make_connection(environment="other", hostname="o.test", client_id="c2")
        assert service.policy_for(other).raw_days == 0


def test_policy_values_are_checked(app):
    import pytest

    with app.app_context():
        connection = make_connection()
        for bad in (
            {"raw_days": -1},
            {"webhook_days": 4000},
            {"erasure_grace_days": 91},
            {"delivery_days": "7"},
            {"nonsense": 1},
        ):
            with pytest.raises(service.PolicyError):
                service.save_policy("test", connection, **bad)
        assert count(DataPolicy) == 0
