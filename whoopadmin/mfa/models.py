"""A staff user's authenticator (TOTP seed, sealed) and recovery codes (hashed)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.sealing import Sealed, SealedMixin
from whoopadmin.types import UTCDateTime


class TotpDevice(SealedMixin, db.Model):
    """The authenticator app of one staff user; unconfirmed until a first code matches."""

    __tablename__ = "staff_totp"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), unique=True
    )
    secret = Sealed()
    secret_sealed: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The last 30-second time step whose code was accepted: a code works once.
    last_step: Mapped[int | None] = mapped_column()


class RecoveryCode(db.Model):
    """One single-use recovery code, stored as its SHA-256 (the code has 80 random bits)."""

    __tablename__ = "staff_recovery_codes"
    __table_args__ = (UniqueConstraint("user_id", "code_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
