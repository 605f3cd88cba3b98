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
    """Queue the keep-alive refreshes that are due. Cron: every 5 min.

    A token is refreshed when a fetch needs it (``LinkTokens``: lazily, single-flight),
    not every hour ahead of its expiry: that cost 24 WHOOP calls per member a day, more
    than all the data (bench/budget.py). The cron only refreshes links whose access token
    expires soon and whose refresh token has not been used for ``REFRESH_KEEPALIVE``
    (or never was): no refresh token sits unused for long, whatever its lifetime at WHOOP.
    """
    from flask import current_app

    from whoopadmin.jobs import enqueue_once

    now = utcnow()
    horizon = now + tokens.REFRESH_AHEAD
    keepalive = timedelta(hours=float(current_app.config["WHOOP_REFRESH_KEEPALIVE_HOURS"]))
    ids = db.session.scalars(
        select(Link.id).where(
            Link.status == "active",
            Link.refresh_token_sealed.is_not(None),
            Link.access_expires_at <= horizon,
            Link.last_refresh_at.is_(None) | (Link.last_refresh_at <= now - keepalive),
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
        counts = service.sync_window(link_id, window_start, window_end, reason, tracker=tracker)
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


def reconcile_link(link_id: int, days: int | None = None, full: bool | None = None) -> dict:
    """Re-fetch recent days (queue ``sync``): webhooks can be missed.

    ``days`` (the more frequent rounds of a connection whose webhooks are silent): the
    last ``days`` of the collections WHOOP sends webhooks for, no body measurement.
    Otherwise the daily reconciliation, sized by what webhooks missed
    (``reconcile_plan``): cycles (no webhooks exist for them) every day, and everything
    when a full reconciliation is due (``full``: decide that instead).
    """
    from whoopadmin.sync import service

    now = utcnow()
    try:
        if days:
            return service.sync_window(
                link_id,
                now - timedelta(days=days),
                None,
                "reconcile",
                types=service.WEBHOOK_TYPES,
                body=False,
            )
        window, due = reconcile_plan(link_id, now)
        if full is None:
            full = due
        elif full:
            window = max(window, timedelta(days=service.RECONCILE_DAYS))
        return service.sync_window(
            link_id,
            now - window,
            None,
            "reconcile",
            types=None if full else ("cycle",),
            body=full,
        )
    except service.LinkInactive:
        return {}


# A full reconciliation this much early still counts as due (the daily job's hour slot).
_FULL_SLACK = timedelta(hours=2)


def reconcile_plan(link_id: int, now) -> tuple[timedelta, bool]:
    """(window, full) of a link's daily reconciliation.

    Full (every collection and the body measurement) every day while the connection's
    webhooks missed a record in the last week; else every ``RECONCILE_FULL_EVERY_DAYS``
    (webhooks bring the rest), reading back over the whole stretch since the last one.
    """
    from flask import current_app
    from sqlalchemy import func

    from whoopadmin.health.models import MissedWebhookCount
    from whoopadmin.sync import service
    from whoopadmin.sync.models import SyncRun

    link = db.session.get(Link, link_id)
    missed = db.session.scalar(
        select(func.coalesce(func.sum(MissedWebhookCount.count), 0)).where(
            MissedWebhookCount.connection_id == link.connection_id,
            MissedWebhookCount.day >= (now - timedelta(days=7)).date(),
        )
    )
    every = 1 if missed else int(current_app.config["RECONCILE_FULL_EVERY_DAYS"])
    # A full sync (backfill, re-sync, full reconciliation) reads the body measurement.
    last_full = db.session.scalar(
        select(func.max(SyncRun.finished_at)).where(
            SyncRun.link_id == link_id,
            SyncRun.type == "body_measurement",
            SyncRun.outcome == "ok",
        )
    )
    full = last_full is None or last_full <= now - timedelta(days=every) + _FULL_SLACK
    window = timedelta(days=max(service.RECONCILE_DAYS, every + 1))
    return (window if full else timedelta(days=service.RECONCILE_DAYS)), full


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
