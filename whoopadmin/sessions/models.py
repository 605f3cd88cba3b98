"""One signed-in browser of one staff user."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.types import UTCDateTime


class StaffSession(db.Model):
    """A live sign-in; the browser's cookie holds a random id whose hash names this row."""

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), index=True
    )
    # SHA-256 of the cookie's session id: a copy of the table signs nobody in.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Written at most once a minute per session (sessions.service.TOUCH_EVERY).
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(255), default="")
    # How the person signed in: "password" or "sso"; and the second factor, if any
    # ("totp", "recovery", "idp").
    method: Mapped[str] = mapped_column(String(16), default="password")
    second_factor: Mapped[str | None] = mapped_column(String(16))

    user = relationship("StaffUser", lazy="joined")
