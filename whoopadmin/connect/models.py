"""Links: one end user's WHOOP account connected through one connection."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.sealing import Sealed, SealedMixin
from whoopadmin.types import UTCDateTime

LINK_STATUSES = ("active", "reauth_required", "revoked", "error")


class Link(SealedMixin, db.Model):
    """A WHOOP member linked to a connection, with sealed tokens."""

    __tablename__ = "links"
    __table_args__ = (
        UniqueConstraint("connection_id", "whoop_user_id"),
        Index("ix_links_connection_status", "connection_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"))
    whoop_user_id: Mapped[int] = mapped_column(BigInteger)
    reference_id: Mapped[str] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(24), default="active", index=True)
    status_reason: Mapped[str | None] = mapped_column(String(500))
    # A keyed hash of the member's e-mail, so support can search by it without storing it.
    email_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    access_token_sealed: Mapped[str | None] = mapped_column(String(4096))
    refresh_token_sealed: Mapped[str | None] = mapped_column(String(4096))
    # Bumped on every token write: a refresh only stores its result if the version it
    # started from is still current (compare-and-swap), so a late writer cannot win.
    token_version: Mapped[int] = mapped_column(default=0)
    access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    scopes: Mapped[str | None] = mapped_column(String(500))
    connected_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    access_token = Sealed()
    refresh_token = Sealed()
