"""The audit log: who changed what, and when."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from whoopadmin.extensions import db
from whoopadmin.types import UTCDateTime


def utcnow() -> datetime:
    """Return the current time, timezone-aware UTC."""
    return datetime.now(UTC)


class AuditEvent(db.Model):
    """One staff (or CLI) action that changed something."""

    __tablename__ = "audit_events"
    # A link's page lists the actions on that link, newest first, straight from this
    # index; without it every page view reads the whole (ever-growing) log.
    __table_args__ = (Index("ix_audit_events_target", "target_type", "target_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), index=True)
    # Kept as text too, so the log still reads after a user is renamed or removed.
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str | None] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


def actor_label(actor) -> str:
    """How the log names ``actor``: a staff user's e-mail, an API key's label, or the text."""
    return getattr(actor, "audit_actor", None) or getattr(actor, "email", None) or str(actor)


def record(actor, action: str, target=None, **details: Any) -> AuditEvent:
    """Add an audit row to the session (the caller commits with its own change).

    ``actor`` is a staff user, an API key (anything with ``audit_actor``, and optionally
    ``audit_details`` merged into the details; it has no ``actor_id``) or a label such as
    ``"cli"``; ``details`` must hold no secret.
    """
    machine = getattr(actor, "audit_actor", None) is not None
    if machine:
        details = {**getattr(actor, "audit_details", {}), **details}
    event = AuditEvent(
        actor_id=None if machine else getattr(actor, "id", None),
        actor=actor_label(actor),
        action=action,
        target_type=getattr(target, "__tablename__", None) if target is not None else None,
        target_id=str(target.id) if target is not None and getattr(target, "id", None) else None,
        details=details,
    )
    db.session.add(event)
    return event
