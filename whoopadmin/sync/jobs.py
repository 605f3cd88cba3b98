"""Sync jobs: refresh, backfill, reconcile, and the periodic sweeps that queue them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from whoopadmin.audit import utcnow
from whoopadmin.connect.models import Link
from whoopadmin.extensions import db
from whoopadmin.jobs import RETRY
from whoopadmin.sync import tokens


def refresh_link(link_id: int, reason: str = "scheduled", force: bool = False) -> str:
    """Refresh one link's tokens if they expire soon, or now if ``force`` (queue ``refresh``)."""
    return tokens.refresh_link(link_id, reason, force=force)


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


def backfill_link(
    link_id: int, start: str | None = None, end: str | None = None, days: int | None = None
) -> dict:
    """Backfill one link (queue ``backfill``): the configured window, or ``[start, end)``.

    ``days``: the connect session's window (default: the connection's). The backfill is
    followed in ``data.backfills``: progress as it goes, ``historical.completed`` when it
    is done, ``historical.failed`` when it gives up (after the last retry).
    """
    from datetime import datetime

    from rq import get_current_job

    from whoopadmin.data import backfills
    from whoopadmin.sync import service

    try:
        link = service.active_link(link_id)
    except service.LinkInactive as exc:
        backfills.fail(None, link_id, "link_inactive", str(exc))
        return {}
    if start is None:
        window_start, window_end = service.backfill_window(link, days)
        reason, trigger = "backfill", "connect"
    else:
        window_start = datetime.fromisoformat(start)
        window_end = datetime.fromisoformat(end) if end else service.utcnow()
        reason, trigger = "resync", "request"
    tracker = backfills.start(link_id, trigger, window_start, window_end)
    try:
        counts = service.sync_window(link_id, window_start, window_end, reason, tracker)
    except service.LinkInactive as exc:
        backfills.fail(tracker, link_id, "link_inactive", str(exc))
        return {}
    except Exception as exc:
        code = getattr(exc, "code", None) or type(exc).__name__
        job = get_current_job()
        if job is None or not job.retries_left:
            backfills.fail(tracker, link_id, str(code), str(exc) or str(code))
        else:
            backfills.retrying(tracker, f"{code}: {exc}")
        raise
    backfills.complete(tracker)
    return counts


def queue_resync(link_id: int, start, end, job_id: str) -> None:
    """Queue a re-sync of one link over ``[start, end)`` (support's button, the API)."""
    from whoopadmin.data import backfills
    from whoopadmin.jobs import enqueue_once

    backfills.queued(link_id, "request", start, end)
    enqueue_once(
        "backfill",
        backfill_link,
        link_id,
        start.isoformat(),
        end.isoformat(),
        job_id=job_id,
        retry=RETRY,
    )


def reconcile_link(link_id: int, days: int | None = None) -> dict:
    """Re-fetch the last few days (queue ``sync``): webhooks can be missed.

    ``days``: how far back (default ``RECONCILE_DAYS``; the more frequent reconciliation
    of a connection whose webhooks are silent reads one day).
    """
    from whoopadmin.sync import service

    start = utcnow() - timedelta(days=days or service.RECONCILE_DAYS)
    try:
        return service.sync_window(link_id, start, None, "reconcile")
    except service.LinkInactive:
        return {}


def reconcile_due(now=None) -> int:
    """Queue today's reconciliation for a 24th of the links (staggered). Cron: hourly."""
    from whoopadmin.jobs import enqueue_once

    now = now or utcnow()
    ids = db.session.scalars(
        select(Link.id).where(Link.status == "active", Link.id % 24 == now.hour)
    ).all()
    for link_id in ids:
        enqueue_once(
            "sync",
            reconcile_link,
            link_id,
            job_id=f"reconcile-{link_id}-{now:%Y%m%d}",
            retry=RETRY,
        )
    return len(ids)
