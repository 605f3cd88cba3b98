"""Stored webhook events and per-connection rejection counts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.types import UTCDateTime

# received → queued → processed | ignored | failed
EVENT_STATUSES = ("received", "queued", "processed", "ignored", "failed")


class WebhookEvent(db.Model):
    """One accepted webhook, stored before the 2xx; the trace id dedupes redeliveries."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        UniqueConstraint("connection_id", "trace_id"),
        Index("ix_webhook_events_status_received", "status", "received_at"),
        Index("ix_webhook_events_link_received", "link_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"))
    link_id: Mapped[int | None] = mapped_column(ForeignKey("links.id"))
    source: Mapped[str] = mapped_column(String(16), default="member")  # member | partner
    trace_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(64))
    whoop_user_id: Mapped[int | None] = mapped_column(BigInteger)
    object_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="received")
    attempts: Mapped[int] = mapped_column(default=0)
    result: Mapped[str | None] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    body: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class WebhookRejection(db.Model):
    """How many webhooks a connection refused, per reason and day."""

    __tablename__ = "webhook_rejections"
    __table_args__ = (UniqueConstraint("connection_id", "reason", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("connections.id"))
    reason: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)
    count: Mapped[int] = mapped_column(default=0)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
