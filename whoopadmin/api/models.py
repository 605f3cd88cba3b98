"""API keys: shown once, stored hashed, scoped to connections and permissions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ColumnElement, ForeignKey, String, Table, false, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection
from whoopadmin.types import UTCDateTime

# What a key may do. ``connect``: create connect sessions; ``read``: read users, their
# status and (issue 17) their data; ``write``: disconnect, backfill (and later, erasure).
PERMISSIONS = ("connect", "read", "write")

# The connections a key that is not an all-connections key may act on.
api_key_connections = Table(
    "api_key_connections",
    db.metadata,
    Column("api_key_id", ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True),
    Column("connection_id", ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True),
)


class ApiKey(db.Model):
    """A named key for an operator's backend."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # The first characters, shown in lists so people can tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # True: every connection, including ones created after the key. False: only
    # ``connections``. Keys from before scopes existed are all-connections keys.
    all_connections: Mapped[bool] = mapped_column(default=True, server_default=true())
    # A space-separated subset of PERMISSIONS, in that order.
    permissions: Mapped[str] = mapped_column(
        String(64), default=" ".join(PERMISSIONS), server_default=" ".join(PERMISSIONS)
    )
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    connections: Mapped[list[Connection]] = relationship(
        secondary=api_key_connections, lazy="selectin", order_by=Connection.id
    )

    @property
    def expired(self) -> bool:
        """Whether the key's expiry has passed."""
        return self.expires_at is not None and self.expires_at <= utcnow()

    @property
    def active(self) -> bool:
        """Whether the key still opens the API (not revoked, not expired)."""
        return self.revoked_at is None and not self.expired

    @property
    def status(self) -> str:
        """``active``, ``revoked`` or ``expired``, for the keys page."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expired else "active"

    @property
    def permission_set(self) -> frozenset[str]:
        """The key's permissions as a set."""
        return frozenset((self.permissions or "").split())

    def allows(self, permission: str) -> bool:
        """Whether the key holds ``permission`` (one of PERMISSIONS)."""
        if permission not in PERMISSIONS:
            raise ValueError(f"unknown permission {permission!r}")
        return permission in self.permission_set

    @property
    def connection_ids(self) -> frozenset[int]:
        """The ids of the connections a scoped key names (empty for all-connections keys)."""
        return frozenset(c.id for c in self.connections)

    def can_access(self, connection_id: int) -> bool:
        """Whether the key may act on the connection with this id."""
        return self.all_connections or connection_id in self.connection_ids

    def connection_filter(self, column) -> ColumnElement[bool]:
        """A WHERE clause keeping rows whose ``column`` (a connection id) the key may act on.

        ``select(Link).where(key.connection_filter(Link.connection_id))``: the scope is part
        of the query, so a row outside it is exactly as absent as a row that does not exist.
        """
        if self.all_connections:
            return true()
        ids = sorted(self.connection_ids)
        return column.in_(ids) if ids else false()

    @property
    def audit_actor(self) -> str:
        """How the audit log names this key (it is no staff user: ``actor_id`` stays empty)."""
        return f"api-key:{self.name} ({self.prefix})"

    @property
    def audit_details(self) -> dict[str, int]:
        """Added to every audit row this key is the actor of."""
        return {"api_key_id": self.id}
