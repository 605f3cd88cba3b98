"""API keys: create (shown once), check, revoke."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select

from whoopadmin import audit
from whoopadmin.api.models import ApiKey
from whoopadmin.audit import utcnow
from whoopadmin.extensions import db

KEY_PREFIX = "wa_"


class ApiKeyError(ValueError):
    """An API key change that cannot be made."""


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(actor, name: str) -> tuple[ApiKey, str]:
    """Create a key; return the row and the key itself (shown once, never stored)."""
    name = (name or "").strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise ApiKeyError("Give the key a name of 1-100 printable characters.")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, prefix=key[:10], key_hash=_hash(key), created_by_id=actor.id)
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "api_key.create", row, name=name, prefix=row.prefix)
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


def authenticate(header: str | None) -> ApiKey | None:
    """The active key named by an ``Authorization: Bearer <key>`` header, if any."""
    if not header:
        return None
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    row = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == _hash(key)))
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    # Write the last-used time at most once a minute, not on every call.
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now
        db.session.commit()
    return row
