"""Connections: one WHOOP app in one environment, with its credentials sealed at rest."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.sealing import Sealed, SealedMixin
from whoopadmin.types import UTCDateTime


class Connection(SealedMixin, db.Model):
    """One WHOOP app (client id + secret) serving one environment on one subdomain."""

    __tablename__ = "connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    environment: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(255))
    # "draft" until a hostname is chosen, then the hostname's DNS status
    # (pending_dns, misconfigured, propagating, verified, active, moved, timed_out).
    status: Mapped[str] = mapped_column(String(32), default="draft", index=True)
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
    # How many members WHOOP lets this app link; None: WHOOP's default (10 until it
    # approves the app, no cap after). See whoopadmin.health.member_cap.
    member_cap: Mapped[int | None] = mapped_column()
    # Send PKCE (S256) with every authorization request. On by default; turning it off is
    # a compatibility switch only (WHOOP's support for PKCE is unconfirmed).
    use_pkce: Mapped[bool] = mapped_column(default=True)
    # A member already linked under one reference id who connects under another:
    # "refuse" (default: the link stays as it is) or "move" (the link follows).
    reference_id_policy: Mapped[str] = mapped_column(String(16), default="refuse")
    # How far back the backfill on connect reaches.
    backfill_days: Mapped[int] = mapped_column(default=30)
    # The last credentials probe: accepted / invalid_client / unreachable / unexpected.
    credentials_check: Mapped[str | None] = mapped_column(String(32))
    credentials_message: Mapped[str | None] = mapped_column(String(500))
    credentials_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    secret_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # DNS: the zone found by the last check, an issuer's validation record if the operator
    # pasted one, the last check's result (CheckResult.to_dict()) and the re-check schedule.
    zone: Mapped[str | None] = mapped_column(String(253))
    issuer_record: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    dns_result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    dns_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dns_check_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dns_next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    dns_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dns_attempts: Mapped[int] = mapped_column(default=0)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    whoop_registered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    live_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

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
