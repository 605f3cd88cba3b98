"""One-time set-password links an operator issues instead of typing someone's password."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.types import UTCDateTime


class PasswordLink(db.Model):
    """A link that lets one staff user set their password once, before it expires."""

    __tablename__ = "staff_password_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), index=True
    )
    # SHA-256 of the token in the link; the token itself is shown once to the operator.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
