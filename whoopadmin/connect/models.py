"""Connect sessions, OAuth states, links and the link timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.sealing import Sealed, SealedMixin
from whoopadmin.types import UTCDateTime

# "erasing": an erasure is scheduled (whoopadmin.erasure); nothing runs for the link.
LINK_STATUSES = ("active", "reauth_required", "revoked", "error", "erasing")


class Link(SealedMixin, db.Model):
    """A WHOOP member linked to a connection; ``uid`` is its public id (the API's user id)."""

    __tablename__ = "links"
    __table_args__ = (
        UniqueConstraint("connection_id", "whoop_user_id"),
        Index("ix_links_connection_status", "connection_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"))
    # Indexed alone too: support searches by it across connections (an OR of indexed
    # columns, or PostgreSQL reads every link: bench/support_scale.py).
    whoop_user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    reference_id: Mapped[str] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(24), default="active", index=True)
    status_reason: Mapped[str | None] = mapped_column(String(500))
    # The member's e-mail and names are personal data: sealed, with a keyed hash of the
    # normalised e-mail so support can find a member by exact e-mail.
    email_sealed: Mapped[str | None] = mapped_column(String(1024))
    first_name_sealed: Mapped[str | None] = mapped_column(String(1024))
    last_name_sealed: Mapped[str | None] = mapped_column(String(1024))
    email_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    access_token_sealed: Mapped[str | None] = mapped_column(String(4096))
    refresh_token_sealed: Mapped[str | None] = mapped_column(String(4096))
    # Bumped on every token write: a refresh stores its result only if the version it
    # started from is still current (compare-and-swap), so a late writer cannot win.
    token_version: Mapped[int] = mapped_column(default=0)
    access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    scopes: Mapped[str | None] = mapped_column(String(500))
    # Consecutive failed refreshes (network, 5xx): past a limit the link turns ``error``.
    refresh_failures: Mapped[int] = mapped_column(default=0)
    last_refresh_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_refresh_result: Mapped[str | None] = mapped_column(String(64))
    connected_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    access_token = Sealed()
    refresh_token = Sealed()
    email = Sealed()
    first_name = Sealed()
    last_name = Sealed()


class ConnectSession(db.Model):
    """A single-use connect link for one end user (``reference_id``) of one connection."""

    __tablename__ = "connect_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"), index=True)
    # Only a hash of the token is stored: a database reader cannot use open links.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reference_id: Mapped[str] = mapped_column(String(255))
    success_redirect_url: Mapped[str | None] = mapped_column(String(2048))
    failure_redirect_url: Mapped[str | None] = mapped_column(String(2048))
    language: Mapped[str | None] = mapped_column(String(16))
    # Days of history the backfill after this session's consent fetches (None: the
    # connection's setting).
    backfill_days: Mapped[int | None] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    link_id: Mapped[int | None] = mapped_column(ForeignKey("links.id"))
    # A reconnect link made by support for one link: only that link's member may use it.
    target_link_id: Mapped[int | None] = mapped_column(ForeignKey("links.id"))
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OAuthState(SealedMixin, db.Model):
    """One trip to WHOOP's authorize page: a single-use state bound to its connect session."""

    __tablename__ = "oauth_states"

    id: Mapped[int] = mapped_column(primary_key=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("connect_sessions.id"), index=True)
    code_verifier_sealed: Mapped[str | None] = mapped_column(String(512))
    # SHA-256 of the random value in the browser cookie set when this state was made: the
    # callback must come from that browser (connect/binding.py).
    binding_hash: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    code_verifier = Sealed()


class LinkEvent(db.Model):
    """One thing that happened to a link (or to a connect attempt before a link existed)."""

    __tablename__ = "link_events"
    __table_args__ = (Index("ix_link_events_link_at", "link_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"), index=True)
    link_id: Mapped[int | None] = mapped_column(ForeignKey("links.id"))
    session_id: Mapped[int | None] = mapped_column(ForeignKey("connect_sessions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(48))
    reason: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


from whoopadmin.connect import counts as _counts  # noqa: E402,F401  (the counts table)
