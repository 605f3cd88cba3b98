"""Start, find, touch and end server-side sessions (no Flask request needed)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from whoopadmin import audit
from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.sessions.models import StaffSession

# last_seen_at is written at most this often per session: not a write per request.
TOUCH_EVERY = timedelta(minutes=1)


class SessionNotFound(LookupError):
    """No live session of this user has that id."""


def hash_token(token: str) -> str:
    """Return the stored form of a session id (SHA-256: the id has 256 random bits)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _limits() -> tuple[timedelta, timedelta]:
    config = current_app.config
    return (
        timedelta(minutes=int(config["SESSION_IDLE_MINUTES"])),
        timedelta(hours=int(config["SESSION_LIFETIME_HOURS"])),
    )


def _expired_clause(now: datetime):
    idle, lifetime = _limits()
    return or_(StaffSession.last_seen_at < now - idle, StaffSession.created_at < now - lifetime)


def start(
    user,
    *,
    address: str,
    user_agent: str,
    method: str = "password",
    second_factor: str | None = None,
) -> str:
    """Open a session for ``user``, note the sign-in, commit; return the cookie's session id."""
    now = utcnow()
    token = secrets.token_urlsafe(32)
    # The person's own expired sessions go now; purge_expired() sweeps everyone's.
    db.session.execute(
        delete(StaffSession).where(StaffSession.user_id == user.id, _expired_clause(now))
    )
    row = StaffSession(
        user_id=user.id,
        token_hash=hash_token(token),
        created_at=now,
        last_seen_at=now,
        address=(address or "")[:64],
        user_agent=(user_agent or "")[:255],
        method=method,
        second_factor=second_factor,
    )
    db.session.add(row)
    user.last_login_at = now
    audit.record(user, "staff.login", user, method=method, second_factor=second_factor)
    db.session.commit()
    return token


def find_live(token: str) -> StaffSession | None:
    """Return the live session this cookie id names (touching it), or None."""
    if not token or len(token) > 100:
        return None
    row = db.session.scalar(
        select(StaffSession).where(StaffSession.token_hash == hash_token(token))
    )
    if row is None:
        return None
    now = utcnow()
    idle, lifetime = _limits()
    if now - row.last_seen_at > idle or now - row.created_at > lifetime:
        end_sessions(StaffSession.id == row.id)
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        # Its own short transaction, so the view's unit of work is not committed early.
        with db.engine.begin() as conn:
            conn.execute(
                update(StaffSession).where(StaffSession.id == row.id).values(last_seen_at=now)
            )
        set_committed_value(row, "last_seen_at", now)  # not a change for the view to flush
    return row


def end_sessions(*where) -> int:
    """Delete the sessions matching ``where`` in their own transaction; return how many."""
    with db.engine.begin() as conn:
        return conn.execute(delete(StaffSession).where(*where)).rowcount


def end_all(user, keep: int | None = None) -> None:
    """End every session of ``user`` (but ``keep``) with the caller's change, uncommitted.

    Called by every change that must sign a person out: password, role, second factor,
    deactivation.
    """
    query = delete(StaffSession).where(StaffSession.user_id == user.id)
    if keep is not None:
        query = query.where(StaffSession.id != keep)
    db.session.execute(query)


def end_one(user, session_id: int, actor=None) -> None:
    """End one of ``user``'s sessions (their own *sign out* button on it) and audit it."""
    row = db.session.get(StaffSession, session_id)
    if row is None or row.user_id != user.id:
        raise SessionNotFound("That session has already ended.")
    db.session.delete(row)
    audit.record(actor or user, "staff.session_end", user, session=session_id)
    db.session.commit()


def end_others(user, current_id: int) -> int:
    """End every session of ``user`` but ``current_id``; return how many ended."""
    count = db.session.execute(
        delete(StaffSession).where(StaffSession.user_id == user.id, StaffSession.id != current_id)
    ).rowcount
    audit.record(user, "staff.session_end_others", user, count=count)
    db.session.commit()
    return count


def sign_out(user, session_id: int | None) -> None:
    """End the session a person signs out of, and audit it."""
    if session_id is not None:
        db.session.execute(delete(StaffSession).where(StaffSession.id == session_id))
    audit.record(user, "staff.logout", user)
    db.session.commit()


def live_sessions(user) -> list[StaffSession]:
    """Return ``user``'s live sessions, the most recently used first."""
    return list(
        db.session.scalars(
            select(StaffSession)
            .where(StaffSession.user_id == user.id, ~_expired_clause(utcnow()))
            .order_by(StaffSession.last_seen_at.desc(), StaffSession.id.desc())
        )
    )


def purge_expired() -> int:
    """Delete every expired session (cron, hourly); return how many."""
    return end_sessions(_expired_clause(utcnow()))
