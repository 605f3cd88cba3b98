"""Retention: each connection keeps raw WHOOP objects, webhook events and delivery payloads
for a number of days (0 = forever); ``enforce_all`` removes older rows in bounded batches.

What goes, per connection:

- **raw WHOOP objects** (``whoop_records``) whose own start time (or, without one, when
  they were fetched) is older than ``raw_days``, with the indicators derived from them;
- **webhook events** received more than ``webhook_days`` ago that are finished
  (processed, ignored or failed: never one still waiting to be processed);
- **deliveries** (their payloads) created more than ``delivery_days`` ago that are
  finished (delivered or failed: never a pending or held one).

Each batch is one short transaction of at most ``batch`` rows; a run stops after
``max_batches`` batches per kind and connection and carries on at the next run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, select, tuple_, update

from whoopadmin.audit import utcnow
from whoopadmin.connect.models import Link
from whoopadmin.destinations.models import Delivery
from whoopadmin.extensions import db
from whoopadmin.retention.models import (
    DEFAULT_DELIVERY_DAYS,
    DEFAULT_GRACE_DAYS,
    DEFAULT_RAW_DAYS,
    DEFAULT_WEBHOOK_DAYS,
    MAX_DAYS,
    MAX_GRACE_DAYS,
    DataPolicy,
)
from whoopadmin.setup.models import Connection
from whoopadmin.sync.models import Indicator, WhoopRecord
from whoopadmin.webhooks.models import WebhookEvent

BATCH = 1000
MAX_BATCHES = 50
FINISHED_EVENTS = ("processed", "ignored", "failed")
FINISHED_DELIVERIES = ("delivered", "failed")


@dataclass(frozen=True)
class Policy:
    """A connection's effective policy (its row, or the defaults)."""

    raw_days: int = DEFAULT_RAW_DAYS
    webhook_days: int = DEFAULT_WEBHOOK_DAYS
    delivery_days: int = DEFAULT_DELIVERY_DAYS
    erasure_grace_days: int = DEFAULT_GRACE_DAYS


class PolicyError(ValueError):
    """A policy value out of range; ``field`` names it."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def policy_row(connection: Connection) -> DataPolicy | None:
    """The connection's stored policy row, if any."""
    return db.session.get(DataPolicy, connection.id)


def policy_for(connection: Connection) -> Policy:
    """The connection's effective policy."""
    row = policy_row(connection)
    if row is None:
        return Policy()
    return Policy(row.raw_days, row.webhook_days, row.delivery_days, row.erasure_grace_days)


def save_policy(actor, connection: Connection, **values: int) -> DataPolicy:
    """Set some of raw_days, webhook_days, delivery_days, erasure_grace_days (audited)."""
    from whoopadmin import audit

    limits = {
        "raw_days": MAX_DAYS,
        "webhook_days": MAX_DAYS,
        "delivery_days": MAX_DAYS,
        "erasure_grace_days": MAX_GRACE_DAYS,
    }
    for name, value in values.items():
        if name not in limits:
            raise PolicyError(f"Unknown setting {name}.", name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limits[name]:
            raise PolicyError(f"{name} must be a whole number from 0 to {limits[name]}.", name)
    row = policy_row(connection)
    if row is None:
        current = Policy()
        row = DataPolicy(
            connection_id=connection.id,
            raw_days=current.raw_days,
            webhook_days=current.webhook_days,
            delivery_days=current.delivery_days,
            erasure_grace_days=current.erasure_grace_days,
        )
        db.session.add(row)
    changes = {k: v for k, v in values.items() if getattr(row, k) != v}
    for name, value in changes.items():
        setattr(row, name, value)
    if changes:
        audit.record(actor, "connection.data_policy", connection, **changes)
    db.session.commit()
    return row


def _cutoff(days: int, now: datetime) -> datetime | None:
    return None if not days else now - timedelta(days=days)


def _batches(step, max_batches: int) -> tuple[int, bool]:
    """Call ``step()`` (rows removed by one committed batch) until it removes nothing."""
    total = 0
    for _ in range(max_batches):
        removed = step()
        total += removed
        if not removed:
            return total, True
    return total, False


def _id_step(model, old_ids, before=None):
    """A batch step: delete the rows ``old_ids`` selects (after ``before(ids)``), commit."""

    def step() -> int:
        ids = db.session.scalars(old_ids).all()
        if not ids:
            return 0
        if before is not None:
            before(ids)
        removed = db.session.execute(delete(model).where(model.id.in_(ids)))
        db.session.commit()
        return removed.rowcount or 0

    return step


def enforce(
    connection: Connection,
    now: datetime | None = None,
    batch: int = BATCH,
    max_batches: int = MAX_BATCHES,
) -> dict:
    """Apply one connection's retention; record and return what was removed."""
    now = now or utcnow()
    policy = policy_for(connection)
    counts = {"raw_objects": 0, "indicators": 0, "webhook_events": 0, "deliveries": 0}
    complete = True
    link_ids = select(Link.id).where(Link.connection_id == connection.id)

    if cutoff := _cutoff(policy.raw_days, now):
        old_records = (
            select(WhoopRecord.id, WhoopRecord.link_id, WhoopRecord.type, WhoopRecord.whoop_id)
            .where(
                WhoopRecord.link_id.in_(link_ids),
                or_(
                    WhoopRecord.start < cutoff,
                    and_(WhoopRecord.start.is_(None), WhoopRecord.fetched_at < cutoff),
                ),
            )
            .order_by(WhoopRecord.id)
            .limit(batch)
        )

        def raw_step() -> int:
            rows = db.session.execute(old_records).all()
            if not rows:
                return 0
            keys = [(r.link_id, r.type, r.whoop_id) for r in rows]
            counts["indicators"] += (
                db.session.execute(
                    delete(Indicator).where(
                        tuple_(Indicator.link_id, Indicator.record_type, Indicator.whoop_id).in_(
                            keys
                        )
                    )
                ).rowcount
                or 0
            )
            removed = db.session.execute(
                delete(WhoopRecord).where(WhoopRecord.id.in_([r.id for r in rows]))
            ).rowcount
            db.session.commit()
            return removed or 0

        counts["raw_objects"], done = _batches(raw_step, max_batches)
        complete &= done

    if cutoff := _cutoff(policy.webhook_days, now):
        old_events = (
            select(WebhookEvent.id)
            .where(
                WebhookEvent.connection_id == connection.id,
                WebhookEvent.received_at < cutoff,
                WebhookEvent.status.in_(FINISHED_EVENTS),
            )
            .order_by(WebhookEvent.id)
            .limit(batch)
        )

        event_step = _id_step(WebhookEvent, old_events)
        counts["webhook_events"], done = _batches(event_step, max_batches)
        complete &= done

    if cutoff := _cutoff(policy.delivery_days, now):
        old_deliveries = (
            select(Delivery.id)
            .where(
                Delivery.connection_id == connection.id,
                Delivery.created_at < cutoff,
                Delivery.status.in_(FINISHED_DELIVERIES),
            )
            .order_by(Delivery.id)
            .limit(batch)
        )

        def unlink_resends(ids) -> None:
            # A re-send of a removed delivery keeps going; it only loses the back-reference.
            db.session.execute(
                update(Delivery).where(Delivery.resend_of_id.in_(ids)).values(resend_of_id=None)
            )

        delivery_step = _id_step(Delivery, old_deliveries, unlink_resends)
        counts["deliveries"], done = _batches(delivery_step, max_batches)
        complete &= done

    row = policy_row(connection)
    if row is None:
        row = DataPolicy(
            connection_id=connection.id,
            raw_days=policy.raw_days,
            webhook_days=policy.webhook_days,
            delivery_days=policy.delivery_days,
            erasure_grace_days=policy.erasure_grace_days,
        )
        db.session.add(row)
    row.last_run_at = now
    row.last_run_counts = {**counts, "complete": complete}
    db.session.commit()
    return row.last_run_counts


def enforce_all(now: datetime | None = None, batch: int = BATCH) -> dict:
    """Apply every connection's retention (cron: hourly); return counts per environment."""
    results = {}
    for connection in db.session.scalars(select(Connection).order_by(Connection.id)).all():
        results[connection.environment] = enforce(connection, now, batch)
    return results


def stored_counts(connection: Connection) -> dict[str, int]:
    """How many rows of each retained kind the connection holds now (for its page)."""
    links = select(Link.id).where(Link.connection_id == connection.id)
    return {
        "raw_objects": db.session.scalar(
            select(func.count(WhoopRecord.id)).where(WhoopRecord.link_id.in_(links))
        ),
        "webhook_events": db.session.scalar(
            select(func.count(WebhookEvent.id)).where(WebhookEvent.connection_id == connection.id)
        ),
        "deliveries": db.session.scalar(
            select(func.count(Delivery.id)).where(Delivery.connection_id == connection.id)
        ),
    }
