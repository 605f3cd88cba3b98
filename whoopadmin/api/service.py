"""API keys: create (shown once, scoped), check, revoke."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select

from whoopadmin import audit
from whoopadmin.api.models import PERMISSIONS, ApiKey
from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection

KEY_PREFIX = "wa_"
# An expiry further out than this is a typo (a year 20266), not a plan.
MAX_LIFETIME = timedelta(days=5 * 366)


class ApiKeyError(ValueError):
    """An API key change that cannot be made; ``field`` names the offending input."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise ApiKeyError("Give the key a name of 1-100 printable characters.", "name")
    return name


def _clean_permissions(permissions: Iterable[str]) -> str:
    chosen = set(permissions)
    unknown = chosen - set(PERMISSIONS)
    if unknown:
        raise ApiKeyError(f"Unknown permission(s): {', '.join(sorted(unknown))}.", "permissions")
    if not chosen:
        raise ApiKeyError("Choose at least one permission.", "permissions")
    return " ".join(p for p in PERMISSIONS if p in chosen)


def _clean_connections(connection_ids: Iterable[int] | None) -> list[Connection] | None:
    if connection_ids is None:
        return None
    ids = set(connection_ids)
    if not ids:
        raise ApiKeyError("Choose at least one connection, or all connections.", "connections")
    found = list(db.session.scalars(select(Connection).where(Connection.id.in_(sorted(ids)))))
    if len(found) != len(ids):
        raise ApiKeyError("One of the chosen connections no longer exists.", "connections")
    return sorted(found, key=lambda c: c.id)


def _clean_expiry(expires_at: datetime | None) -> datetime | None:
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        raise ApiKeyError("The expiry needs a time zone.", "expires_on")
    now = utcnow()
    if expires_at <= now:
        raise ApiKeyError("The expiry must be in the future.", "expires_on")
    if expires_at - now > MAX_LIFETIME:
        raise ApiKeyError("The expiry can be at most five years away.", "expires_on")
    return expires_at


def end_of_day(day: date) -> datetime:
    """When a key that "expires after ``day``" stops working: the next midnight, UTC."""
    today = utcnow().date()
    if day < today:
        raise ApiKeyError("The expiry date is in the past.", "expires_on")
    if day - today > MAX_LIFETIME:
        raise ApiKeyError("The expiry can be at most five years away.", "expires_on")
    return datetime.combine(day + timedelta(days=1), time(0), UTC)


def create_key(
    actor,
    name: str,
    *,
    connection_ids: Iterable[int] | None = None,
    permissions: Iterable[str] = PERMISSIONS,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; return the row and the key itself (shown once, never stored).

    ``connection_ids`` None makes an all-connections key (connections created later
    included); otherwise the key acts only on those connections (at least one).
    """
    name = _clean_name(name)
    scope = _clean_connections(connection_ids)
    granted = _clean_permissions(permissions)
    expires_at = _clean_expiry(expires_at)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        name=name,
        prefix=key[:10],
        key_hash=_hash(key),
        created_by_id=actor.id,
        all_connections=scope is None,
        permissions=granted,
        expires_at=expires_at,
        connections=scope or [],
    )
    db.session.add(row)
    db.session.flush()
    audit.record(
        actor,
        "api_key.create",
        row,
        name=name,
        prefix=row.prefix,
        connections="all" if scope is None else [c.environment for c in scope],
        permissions=granted.split(),
        expires_at=expires_at.isoformat() if expires_at else None,
    )
    db.session.commit()
    return row, key


def list_keys() -> list[ApiKey]:
    """Every key, newest first."""
    return list(db.session.scalars(select(ApiKey).order_by(ApiKey.id.desc())))


def revoke_key(actor, key: ApiKey) -> None:
    """Revoke a key: it stops working at once."""
    if key.revoked_at is not None:
        return
    key.revoked_at = utcnow()
    audit.record(actor, "api_key.revoke", key, name=key.name, prefix=key.prefix)
    db.session.commit()


def find_key(header: str | None) -> ApiKey | None:
    """The key (revoked and expired ones too) named by ``Authorization: Bearer <key>``."""
    if not header:
        return None
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    return db.session.scalar(select(ApiKey).where(ApiKey.key_hash == _hash(key)))


def mark_used(key: ApiKey) -> None:
    """Record the last-used time of ``key`` (at most once a minute, not on every call)."""
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > timedelta(minutes=1):
        key.last_used_at = now
        db.session.commit()
