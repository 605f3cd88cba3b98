"""Processing stored webhook events, and the sweeper for events that were never queued."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update

from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.webhooks.models import WebhookEvent
from whoopadmin.webhooks.service import queue_event

log = logging.getLogger(__name__)


def sweep_events(min_age_seconds: int = 30, limit: int = 1000) -> int:
    """Queue stored events still waiting (Redis was down, or a worker died). Cron: every minute."""
    cutoff = utcnow() - timedelta(seconds=min_age_seconds)
    ids = db.session.scalars(
        select(WebhookEvent.id)
        .where(WebhookEvent.status == "received", WebhookEvent.received_at <= cutoff)
        .order_by(WebhookEvent.id)
        .limit(limit)
    ).all()
    return sum(1 for event_id in ids if queue_event(event_id))


def process_event(event_id: int) -> str:
    """Fetch or delete what one webhook names (queue ``webhooks``); idempotent."""
    from whoopadmin.dbutil import kept_across_commits, relaxed_durability

    # If a crash loses this work's commits, the event is still "received": swept, redone.
    with relaxed_durability(), kept_across_commits():
        return _process_event(event_id)


def process_events(event_ids: list[int]) -> str:
    """Process a batch handed over by a web process (queue ``webhooks``).

    Each event is processed on its own, as ``process_event`` would. One that fails is
    queued again on its own, on the schedule RQ's retry would have followed: this run
    was its first attempt.
    """
    failed = 0
    seen: set[tuple] = set()
    for event_id in event_ids:
        if _same_as_before(event_id, seen):
            continue
        try:
            process_event(event_id)
        except Exception:
            db.session.rollback()
            failed += 1
            _retry_later(event_id)
    return f"{len(event_ids) - failed} processed, {failed} queued again"


def _same_as_before(event_id: int, seen: set[tuple]) -> bool:
    """Whether an earlier event of this batch named the same object for the same change
    (a redelivery under a new trace id): it is then marked processed without a fetch —
    the earlier event's fetch, done after both arrived, read the newest version."""
    event = db.session.get(WebhookEvent, event_id)
    if event is None or event.status != "received":
        return False
    key = (event.link_id, event.type, event.object_id)
    if key not in seen:
        seen.add(key)
        return False
    event.status, event.result = "processed", "same object as an earlier event of its batch"
    event.processed_at = utcnow()
    db.session.commit()
    return True


def _retry_later(event_id: int) -> None:
    from rq import Retry

    from whoopadmin.jobs import RETRY, get_queue

    first, *later = RETRY.intervals
    try:
        get_queue("webhooks").enqueue_in(
            timedelta(seconds=first),
            "whoopadmin.webhooks.jobs.process_event",
            event_id,
            job_id=f"webhook-{event_id}",
            retry=Retry(max=RETRY.max - 1, interval=later) if later else None,
        )
    except Exception as exc:  # still "received": the sweeper queues it
        log.warning(
            "webhook %s failed and could not be queued again: %s", event_id, type(exc).__name__
        )


def _process_event(event_id: int) -> str:
    from whoopadmin.connect.models import Link
    from whoopadmin.sync import service

    event = db.session.get(WebhookEvent, event_id)
    if event is None or event.status in ("processed", "ignored"):
        return "nothing to do"
    event.attempts = (event.attempts or 0) + 1
    link = db.session.get(Link, event.link_id) if event.link_id else None
    if link is None or link.status not in ("active", "error"):
        event.status, event.result = "ignored", "link not active"
        event.processed_at = utcnow()
        db.session.commit()
        return event.result
    db.session.commit()  # the attempt counts even if this process dies mid-way
    try:
        result = service.apply_event(link, event.type, event.object_id)
    except service.LinkInactive as exc:
        result, status = str(exc), "failed"
    except Exception as exc:
        db.session.rollback()
        _finish(event_id, result=f"attempt {event.attempts} failed: {type(exc).__name__}")
        raise  # RQ retries; storing is idempotent
    else:
        status = "processed"
    _finish(event_id, status=status, result=result, processed_at=utcnow())
    return result


def _finish(event_id: int, **values) -> None:
    values["result"] = values["result"][:255]
    db.session.execute(update(WebhookEvent).where(WebhookEvent.id == event_id).values(**values))
    db.session.commit()


def send_test_event_job(connection_id: int) -> str:
    """Send the go-live test webhook through the connection's public URL (queue ``webhooks``)."""
    from flask import current_app

    from whoopadmin.setup import service as setup_service
    from whoopadmin.setup.models import Connection
    from whoopadmin.webhooks.service import record_test_result, send_test_event

    connection = db.session.get(Connection, connection_id)
    if connection is None or not connection.hostname or connection.client_secret_sealed is None:
        return "connection not ready"
    url = setup_service.webhook_url(connection)
    trace_id, outcome = send_test_event(connection, url, float(current_app.config["WHOOP_TIMEOUT"]))
    result = (
        f"arrived through {url} (trace id {trace_id})"
        if outcome == "arrived"
        else (f"did not arrive through {url}: {outcome}")
    )
    record_test_result(connection_id, result)
    return result
