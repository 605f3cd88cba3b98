"""Sync jobs: refresh, backfill, reconcile, and the periodic sweeps that queue them."""

from __future__ import annotations

from datetime import timedelta

from rq import Retry
from sqlalchemy import select

from whoopadmin.audit import utcnow
from whoopadmin.connect.models import Link
from whoopadmin.extensions import db
from whoopadmin.sync import tokens

# Transient failures are retried by RQ on this schedule (seconds).
RETRY = Retry(max=5, interval=[10, 30, 60, 300, 900])


def refresh_link(link_id: int, reason: str = "scheduled") -> str:
    """Refresh one link's tokens if they expire soon (queue ``refresh``)."""
    return tokens.refresh_link(link_id, reason)


def refresh_due() -> int:
    """Queue refreshes for active links whose access tokens expire soon. Cron: every 5 min."""
    from whoopadmin.jobs import enqueue_once

    horizon = utcnow() + tokens.REFRESH_AHEAD
    ids = db.session.scalars(
        select(Link.id).where(
            Link.status == "active",
            Link.refresh_token_sealed.is_not(None),
            Link.access_expires_at <= horizon,
        )
    ).all()
    for link_id in ids:
        enqueue_once(
            "refresh", refresh_link, link_id, "scheduled", job_id=f"refresh-{link_id}", retry=RETRY
        )
    return len(ids)


def cleanup_expired(older_than: timedelta = timedelta(days=1)) -> int:
    """Delete connect sessions and OAuth states long expired and never used. Cron: hourly."""
    from sqlalchemy import delete

    from whoopadmin.connect.models import ConnectSession, LinkEvent, OAuthState

    cutoff = utcnow() - older_than
    states = db.session.execute(delete(OAuthState).where(OAuthState.expires_at < cutoff)).rowcount
    stale = select(ConnectSession.id).where(
        ConnectSession.expires_at < cutoff, ConnectSession.used_at.is_(None)
    )
    # Keep failed-attempt events (the timeline) but detach them from deleted sessions.
    db.session.execute(
        LinkEvent.__table__.update().where(LinkEvent.session_id.in_(stale)).values(session_id=None)
    )
    gone = db.session.execute(delete(OAuthState).where(OAuthState.session_id.in_(stale))).rowcount
    sessions = db.session.execute(
        delete(ConnectSession).where(ConnectSession.id.in_(stale))
    ).rowcount
    db.session.commit()
    return states + gone + sessions
