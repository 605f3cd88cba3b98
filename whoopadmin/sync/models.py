"""Raw WHOOP records (kept for support) and the normalised indicators derived from them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.types import UTCDateTime

RECORD_TYPES = ("cycle", "sleep", "recovery", "workout", "profile", "body")


class WhoopRecord(db.Model):
    """One WHOOP object as WHOOP sent it, upserted by (link, type, WHOOP id)."""

    __tablename__ = "whoop_records"
    __table_args__ = (
        UniqueConstraint("link_id", "type", "whoop_id"),
        Index("ix_whoop_records_link_type_start", "link_id", "type", "start"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("links.id"))
    type: Mapped[str] = mapped_column(String(16))
    whoop_id: Mapped[str] = mapped_column(String(64))
    start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    whoop_updated_at: Mapped[str | None] = mapped_column(String(40))
    score_state: Mapped[str | None] = mapped_column(String(24))
    deleted: Mapped[bool] = mapped_column(default=False)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Indicator(db.Model):
    """One named value with a unit, e.g. ``recovery_score`` = 71 ``%``."""

    __tablename__ = "indicators"
    __table_args__ = (
        UniqueConstraint("link_id", "record_type", "whoop_id", "name"),
        Index("ix_indicators_link_name_start", "link_id", "name", "start"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("links.id"))
    record_type: Mapped[str] = mapped_column(String(16))
    whoop_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(48))
    value: Mapped[float | None]
    text: Mapped[str | None] = mapped_column(String(100))
    unit: Mapped[str | None] = mapped_column(String(16))
    start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SyncRun(db.Model):
    """One sync of one data type for a link: when, why, how many records, the outcome."""

    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_link_type_at", "link_id", "type", "finished_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("links.id"))
    type: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(24))  # backfill, webhook, reconcile, resync
    records: Mapped[int] = mapped_column(default=0)
    outcome: Mapped[str] = mapped_column(String(24))  # ok, error, deleted
    error: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
