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
    # Sent to a connection's other destinations when one is disabled after days of failures.
    "destination.disabled",
    "connection_warning",
    # A user's data was erased (whoopadmin.erasure): the deletion receipt.
    "user.erased",
    # A backfill finished (counts per type), or gave up (the reason): data/backfills.py.
    "historical.completed",
    "historical.failed",
)
DATA_EVENTS = ("sleep", "recovery", "workout", "cycle", "body")
EVENT_TYPES = LIFECYCLE_EVENTS + DATA_EVENTS
# Sent only by the "Send test" button, to one destination, whatever its filter.
TEST_EVENT = "test"

# "held": stored for a disabled destination, not attempted, waiting to be recovered.
DELIVERY_STATUSES = ("pending", "delivered", "failed", "held")
# "full": the whole event; "ping": ids only (no health data), the backend reads the rest.
PAYLOAD_MODES = ("full", "ping")
RECOVERY_STATUSES = ("running", "finished", "cancelled", "stopped")


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
    # After a rotation the old secret keeps signing beside the new one until this time.
    previous_secret_sealed: Mapped[str | None] = mapped_column(String(512))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    payload_mode: Mapped[str] = mapped_column(String(8), default="full", server_default="full")
    # The first failed attempt since the last successful one (None while deliveries work).
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set while disabled ("failing": by the cron after days of failures; "operator"):
    # new deliveries are stored as "held", not attempted, until a recovery sends them.
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    disabled_reason: Mapped[str | None] = mapped_column(String(16))

    signing_secret = Sealed()
    previous_secret = Sealed()

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
    # The recovery that sent this delivery (a copy of a failed one, or a held one released).
    recovery_id: Mapped[int | None] = mapped_column(
        ForeignKey("delivery_recoveries.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DeliveryRecovery(db.Model):
    """One "re-send everything that failed since …" run for a destination, and its progress.

    The job walks the destination's original deliveries (not re-sends) in id order;
    ``position`` is the id of the last one handled, committed after each, so a job that
    dies is resumed where it stopped. ``running_for`` holds the destination id while the
    recovery runs: its unique constraint allows one running recovery per destination.
    ``lease_until`` is the running job's heartbeat; the cron resumes a recovery whose
    lease has lapsed.
    """

    __tablename__ = "delivery_recoveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    destination_id: Mapped[int] = mapped_column(
        ForeignKey("destinations.id", ondelete="CASCADE"), index=True
    )
    running_for: Mapped[int | None] = mapped_column(unique=True)
    status: Mapped[str] = mapped_column(String(16), default="running")
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    # Deliveries created after the start (ids above this) are not part of the recovery.
    until_id: Mapped[int] = mapped_column(default=0)
    position: Mapped[int] = mapped_column(default=0)
    position_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    total: Mapped[int] = mapped_column(default=0)
    done: Mapped[int] = mapped_column(default=0)
    sent: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    # Deliveries per second, fixed when the recovery starts.
    rate: Mapped[float] = mapped_column(default=10.0)
    message: Mapped[str | None] = mapped_column(String(300))
    started_by: Mapped[str] = mapped_column(String(255))
    ended_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def percent(self) -> int:
        """How far it has come, 0 to 100."""
        if self.status == "finished":
            return 100
        return min(100, int(100 * self.done / self.total)) if self.total else 0
