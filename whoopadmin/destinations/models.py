"""Destinations (where events go, per connection) and deliveries (one event to one place)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.sealing import Sealed, SealedMixin
from whoopadmin.types import UTCDateTime

LIFECYCLE_EVENTS = (
    "auth.success",
    "auth.error",
    "user_reauth",
    "user.reference_changed",
    "deauth",
    "access_revoked",
    "connection_error",
    "rate_limit_hit",
)
DATA_EVENTS = ("sleep", "recovery", "workout", "cycle", "body")
EVENT_TYPES = LIFECYCLE_EVENTS + DATA_EVENTS
# Sent only by the "Send test" button, to one destination, whatever its filter.
TEST_EVENT = "test"

DELIVERY_STATUSES = ("pending", "delivered", "failed")


class Destination(SealedMixin, db.Model):
    """A URL of the operator's that receives a connection's events, signed with a secret."""

    __tablename__ = "destinations"

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    # The event types delivered here (a subset of EVENT_TYPES).
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    signing_secret_sealed: Mapped[str | None] = mapped_column(String(512))
    active: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    secret_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    signing_secret = Sealed()

    def wants(self, event_type: str) -> bool:
        """Whether this destination takes ``event_type`` (test events always)."""
        return event_type == TEST_EVENT or event_type in (self.events or [])


class Delivery(db.Model):
    """One event to one destination, with the outcome of its latest attempt.

    ``next_attempt_at`` is when a pending delivery is due: the sweeper ``retry_due``
    queues every pending delivery whose time has come, so neither a lost Redis job nor a
    dead worker loses an event.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_status_next", "status", "next_attempt_at"),
        Index("ix_deliveries_destination_id", "destination_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    destination_id: Mapped[int] = mapped_column(ForeignKey("destinations.id", ondelete="CASCADE"))
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"), index=True)
    # The event's own id: the same for a re-send, so receivers can drop duplicates.
    event_id: Mapped[str] = mapped_column(String(40), index=True)
    event_type: Mapped[str] = mapped_column(String(40))
    # The exact JSON document that is posted (and signed).
    payload: Mapped[str] = mapped_column(Text)
    link_id: Mapped[int | None] = mapped_column(ForeignKey("links.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    last_status_code: Mapped[int | None] = mapped_column()
    last_latency_ms: Mapped[int | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(String(300))
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Every attempt: [{"at", "attempt", "status_code", "latency_ms", "error"}].
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    resend_of_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
