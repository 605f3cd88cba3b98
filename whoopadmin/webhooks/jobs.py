"""Processing stored webhook events, and the sweeper for events that were never queued."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.webhooks.models import WebhookEvent
from whoopadmin.webhooks.service import queue_event


def sweep_events(min_age_seconds: int = 30, limit: int = 1000) -> int:
    """Queue stored events still waiting (Redis was down, or a worker died). Cron: every minute."""
    cutoff = utcnow() - timedelta(seconds=min_age_seconds)
    ids = db.session.scalars(
        select(WebhookEvent.id)
        .where(WebhookEvent.status == "received", WebhookEvent.received_at <= cutoff)
        .order_by(WebhookEvent.id)
        .limit(limit)
    ).all()
    return sum(1 for event_id in ids if queue_event(event_id))
