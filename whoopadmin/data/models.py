"""Backfills: one row per historical pull of a link, with its window and progress."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.sync.models import WhoopRecord
from whoopadmin.types import UTCDateTime

# queued → running → completed | failed
BACKFILL_STATUSES = ("queued", "running", "completed", "failed")
# Why a backfill ran: the member connected, or someone (API key, support) asked for one.
BACKFILL_TRIGGERS = ("connect", "request")


class Backfill(db.Model):
    """One backfill of one link: its window, where it has got to, what it stored."""

    __tablename__ = "backfills"
    __table_args__ = (Index("ix_backfills_link_id", "link_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("links.id"))
    trigger: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    # 0.0-1.0: data types done, plus how far back the current one has got.
    progress: Mapped[float] = mapped_column(default=0.0)
    current_type: Mapped[str | None] = mapped_column(String(16))
    # Records stored so far per data type (API names: sleep, recovery, cycle, workout, body).
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(String(255))
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# The data API pages records by (start, id) within one link and type: keyset pagination
# reads this index in order and stops after one page, however many records there are.
Index(
    "ix_whoop_records_link_type_start_id",
    WhoopRecord.link_id,
    WhoopRecord.type,
    WhoopRecord.start,
    WhoopRecord.id,
)
