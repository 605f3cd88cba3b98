"""Connections: one WHOOP app in one environment, with its credentials sealed at rest."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.sealing import Sealed, SealedMixin


class Connection(SealedMixin, db.Model):
    """One WHOOP app (client id + secret) serving one environment on one subdomain."""

    __tablename__ = "connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    environment: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32), default="draft")
    client_id: Mapped[str | None] = mapped_column(String(255))
    client_secret_sealed: Mapped[str | None] = mapped_column(String(512))
    previous_client_secret_sealed: Mapped[str | None] = mapped_column(String(512))
    partner_client_id: Mapped[str | None] = mapped_column(String(255))
    partner_client_secret_sealed: Mapped[str | None] = mapped_column(String(512))
    webhook_signing_secret_sealed: Mapped[str | None] = mapped_column(String(512))
    hostname: Mapped[str | None] = mapped_column(String(253), unique=True)
    validation_token: Mapped[str | None] = mapped_column(String(64))
    allowed_origins: Mapped[list[str]] = mapped_column(JSON, default=list)
    app_schemes: Mapped[list[str]] = mapped_column(JSON, default=list)
    rate_limit_per_minute: Mapped[int] = mapped_column(default=100)
    rate_limit_per_day: Mapped[int] = mapped_column(default=10_000)
    approved_by_whoop: Mapped[bool] = mapped_column(default=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    client_secret = Sealed()
    previous_client_secret = Sealed()
    partner_client_secret = Sealed()
    webhook_signing_secret = Sealed()

    @staticmethod
    def mask(secret: str | None) -> str:
        """Return the only form of a secret the UI ever shows, e.g. ``••••3f9a``."""
        if not secret:
            return ""
        return "••••" + (secret[-4:] if len(secret) >= 12 else "")
