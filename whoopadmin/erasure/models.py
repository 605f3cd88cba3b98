"""An erasure request: scheduled, then done (a receipt) or cancelled."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.types import UTCDateTime

# scheduled → running → done; scheduled → cancelled.
ERASURE_STATUSES = ("scheduled", "running", "done", "cancelled")


class Erasure(db.Model):
    """One request to erase a link's data; once done, a receipt that names no one.

    ``link_id`` is cleared when the erasure is carried out (the link is gone then);
    ``user_hash`` (SHA-256 of the public user id) lets the API answer 410 for an erased
    user and lets a backend match the ``user.erased`` event, without keeping the id.
    """

    __tablename__ = "erasures"
    __table_args__ = (Index("ix_erasures_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"), index=True)
    link_id: Mapped[int | None] = mapped_column(ForeignKey("links.id"), index=True)
    user_hash: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    # The link's status before the request, restored by an undo (cleared once done).
    previous_status: Mapped[str | None] = mapped_column(String(24))
    previous_reason: Mapped[str | None] = mapped_column(String(500))
    requested_by: Mapped[str] = mapped_column(String(255))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    cancelled_by: Mapped[str | None] = mapped_column(String(255))
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Rows removed per kind, and WHOOP's answer to the revocation.
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    whoop_revoke: Mapped[str | None] = mapped_column(String(64))
