"""What connection health remembers: missed webhooks per day, webhook activity, signal states."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.types import UTCDateTime

SIGNAL_STATES = ("ok", "warning", "problem")


class MissedWebhookCount(db.Model):
    """Records reconciliation or a backfill stored that no webhook announced, per day and type.

    ``day`` is the (UTC) day the record was found, not the day it changed at WHOOP.
    """

    __tablename__ = "missed_webhooks"
    __table_args__ = (UniqueConstraint("connection_id", "day", "record_type"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"))
    day: Mapped[date] = mapped_column(Date)
    record_type: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(default=0)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookActivity(db.Model):
    """How often a connection's member webhooks arrive, learned by the health cron pass.

    ``rate_per_hour`` is the learned rate (see ``health.webhooks``); ``event_cursor`` the id
    of the last stored webhook event counted (event ids only grow, so each pass reads only
    new rows); ``updated_at`` the last pass that counted webhooks. ``missed_since_webhook``
    counts missed records found since the last member webhook arrived (a pass that sees a
    newer webhook sets it back to 0); ``last_change_at`` is the newest WHOOP ``updated_at``
    a backfill or reconciliation stored (members are active).
    """

    __tablename__ = "webhook_activity"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"), primary_key=True)
    event_cursor: Mapped[int] = mapped_column(default=0)
    rate_per_hour: Mapped[float] = mapped_column(default=0.0)
    learned_seconds: Mapped[float] = mapped_column(default=0.0)
    learned_webhooks: Mapped[int] = mapped_column(default=0)
    last_webhook_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_webhook_id: Mapped[int] = mapped_column(default=0)
    missed_since_webhook: Mapped[int] = mapped_column(default=0)
    last_missed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_change_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The likely causes of silence as last checked (health.webhooks.check_causes).
    causes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    causes_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConnectionSignal(db.Model):
    """The last evaluated state of one health signal of one connection.

    A change of ``state`` is what delivers a ``connection_warning`` event: once per
    transition, however often the cron pass evaluates.
    """

    __tablename__ = "connection_signals"
    __table_args__ = (UniqueConstraint("connection_id", "signal"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"))
    signal: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="ok")
    since: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    message: Mapped[str | None] = mapped_column(String(500))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
