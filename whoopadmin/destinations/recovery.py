"""Recovery: re-send everything that failed (or was held) since a time, in order, at a rate.

A recovery walks the destination's *original* deliveries (not re-sends, not test events)
created since the chosen time that failed or are held, oldest first. For each it looks
at the event's latest delivery to this destination: held → that delivery is sent; failed →
a re-send is made and sent; delivered or still being retried → nothing to do (skipped).
The job sends each one itself, one after the other, at most ``rate`` per second, so
they arrive in order; one whose first attempt fails goes on the normal retry schedule.

Progress (``position``: the last original delivery handled, and the counts) is committed
after each one, and the job runs in slices that queue their successor, so a worker that
dies costs nothing but the lease: ``resume_stalled`` (cron, every minute) queues every
running recovery whose job stopped renewing its lease, and the next job goes on from
``position``. A delivery that the dead job had made but not finished is sent again first.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from whoopadmin import audit
from whoopadmin.audit import utcnow
from whoopadmin.destinations import service
from whoopadmin.destinations.models import TEST_EVENT, Delivery, DeliveryRecovery, Destination
from whoopadmin.destinations.service import DestinationError, iso, setting
from whoopadmin.extensions import db

log = logging.getLogger(__name__)

# A recovery stops when this many first attempts in a row fail: the receiver is down again.
STOP_AFTER_FAILURES = 10
# One job runs this long at most, then queues the next (a worker is never held for long).
SLICE_SECONDS = 30.0
BATCH = 50
RECOVERABLE = ("failed", "held")


class RecoveryError(DestinationError):
    """A recovery cannot be started or cancelled as asked; the message says why."""


def lease() -> timedelta:
    """How long a job may go without a sign of life before the cron resumes its recovery.

    Longer than the slowest step: a send that tries several addresses, each up to the
    destination timeout, plus the wait the rate imposes between two sends.
    """
    timeout = float(current_app.config.get("DESTINATION_TIMEOUT", 10.0))
    return timedelta(seconds=4 * timeout + 1 / setting("DESTINATION_RECOVERY_RATE") + 5)


def earliest(now: datetime | None = None) -> datetime:
    """The earliest time a recovery may start from (the recovery window)."""
    days = setting("DESTINATION_RECOVERY_WINDOW_DAYS")
    return (now or utcnow()) - timedelta(days=days)


def check_since(since: datetime | None, now: datetime | None = None) -> datetime:
    """The start time (UTC; naive means UTC) if it is in the past and within the window."""
    if since is None:
        raise RecoveryError("Enter the date and time (UTC) to recover from.", "since")
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    now = now or utcnow()
    if since > now:
        raise RecoveryError("That time is in the future: choose one in the past.", "since")
    first = earliest(now)
    if since < first:
        raise RecoveryError(
            f"A recovery reaches back at most {setting('DESTINATION_RECOVERY_WINDOW_DAYS'):g} "
            f"days: choose {first:%Y-%m-%d %H:%M} UTC or later.",
            "since",
        )
    return since


def clamp(since: datetime | None, now: datetime | None = None) -> datetime | None:
    """A suggested start time moved into the window (None stays None)."""
    if since is None:
        return None
    now = now or utcnow()
    return min(max(since, earliest(now) + timedelta(minutes=1)), now)


def running(destination_id: int) -> DeliveryRecovery | None:
    """The destination's running recovery, if any."""
    return db.session.scalar(
        select(DeliveryRecovery).where(DeliveryRecovery.running_for == destination_id)
    )


def history(destination_id: int, limit: int = 5) -> list[DeliveryRecovery]:
    """The destination's latest recoveries, newest first."""
    return list(
        db.session.scalars(
            select(DeliveryRecovery)
            .where(DeliveryRecovery.destination_id == destination_id)
            .order_by(DeliveryRecovery.id.desc())
            .limit(limit)
        )
    )


def _candidates(recovery: DeliveryRecovery):
    """The original deliveries a recovery covers (not yet handled), oldest first."""
    return (
        select(Delivery)
        .where(
            Delivery.destination_id == recovery.destination_id,
            Delivery.resend_of_id.is_(None),
            Delivery.event_type != TEST_EVENT,
            Delivery.status.in_(RECOVERABLE),
            Delivery.created_at >= recovery.since,
            Delivery.id <= recovery.until_id,
            Delivery.id > recovery.position,
        )
        .order_by(Delivery.id)
    )


def start(actor, destination: Destination, since: datetime | None) -> DeliveryRecovery:
    """Start re-sending what failed since ``since``; RecoveryError if it cannot start."""
    since = check_since(since)
    if destination.disabled_at is not None:
        raise RecoveryError("Enable the destination first: while disabled it holds its events.")
    if not destination.active:
        raise RecoveryError("The destination is paused: make it active first.")
    if running(destination.id) is not None:
        raise RecoveryError("A recovery is already running for this destination.")
    until_id = db.session.scalar(
        select(func.max(Delivery.id)).where(Delivery.destination_id == destination.id)
    )
    recovery = DeliveryRecovery(
        destination_id=destination.id,
        running_for=destination.id,
        status="running",
        since=since,
        until_id=until_id or 0,
        position=0,
        rate=setting("DESTINATION_RECOVERY_RATE"),
        started_by=getattr(actor, "email", None) or str(actor),
        queued_at=utcnow(),
    )
    recovery.total = db.session.scalar(
        _candidates(recovery).with_only_columns(func.count(Delivery.id)).order_by(None)
    )
    if not recovery.total:
        raise RecoveryError(
            f"Nothing failed or waits since {since:%Y-%m-%d %H:%M} UTC: nothing to recover.",
            "since",
        )
    db.session.add(recovery)
    try:
        db.session.flush()
    except IntegrityError:  # another operator started one a moment ago
        db.session.rollback()
        raise RecoveryError("A recovery is already running for this destination.") from None
    audit.record(
        actor,
        "destination.recovery_start",
        destination,
        recovery=recovery.id,
        since=iso(since),
        total=recovery.total,
        rate=recovery.rate,
    )
    db.session.commit()
    _queue(recovery.id)
    return recovery


def cancel(actor, destination: Destination) -> DeliveryRecovery:
    """Cancel the destination's running recovery (its job stops before its next send)."""
    recovery = running(destination.id)
    if recovery is None:
        raise RecoveryError("No recovery is running for this destination.")
    _end(recovery, "cancelled", f"Cancelled by {getattr(actor, 'email', None) or actor}.")
    recovery.ended_by = getattr(actor, "email", None) or str(actor)
    audit.record(actor, "destination.recovery_cancel", destination, recovery=recovery.id)
    db.session.commit()
    return recovery


def _end(recovery: DeliveryRecovery, status: str, message: str | None = None) -> None:
    recovery.status = status
    recovery.running_for = None
    recovery.finished_at = utcnow()
    recovery.lease_until = None
    recovery.message = message
    if status == "finished":
        recovery.total = max(recovery.total, recovery.done)


def _queue(recovery_id: int) -> bool:
    """Queue a slice of the recovery; if Redis is down, the cron queues it later."""
    from whoopadmin.jobs import get_queue

    try:
        get_queue("deliveries").enqueue(
            "whoopadmin.destinations.jobs.run_recovery",
            recovery_id,
            # Unique per slice: a running slice's job must never be replaced by the next.
            job_id=f"recovery-{recovery_id}-{uuid.uuid4().hex[:8]}",
            job_timeout=int(SLICE_SECONDS + 2 * lease().total_seconds() + 60),
        )
    except Exception as exc:
        log.warning("recovery %s not queued: %s", recovery_id, type(exc).__name__)
        return False
    return True


def resume_stalled() -> int:
    """Queue every running recovery whose job died or was lost (cron); return how many."""
    now = utcnow()
    stale = now - lease()
    ids = db.session.scalars(
        select(DeliveryRecovery.id).where(
            DeliveryRecovery.status == "running",
            or_(DeliveryRecovery.lease_until.is_(None), DeliveryRecovery.lease_until < now),
            or_(DeliveryRecovery.queued_at.is_(None), DeliveryRecovery.queued_at < stale),
        )
    ).all()
    if ids:
        db.session.execute(
            update(DeliveryRecovery).where(DeliveryRecovery.id.in_(ids)).values(queued_at=now)
        )
        db.session.commit()
    for recovery_id in ids:
        log.info("resuming recovery %s", recovery_id)
        _queue(recovery_id)
    return len(ids)


# --------------------------------------------------------------------------- the job


def _claim(recovery_id: int) -> bool:
    """Take the recovery's lease; False if a live job holds it or it no longer runs."""
    now = utcnow()
    result = db.session.execute(
        update(DeliveryRecovery)
        .where(
            DeliveryRecovery.id == recovery_id,
            DeliveryRecovery.status == "running",
            or_(DeliveryRecovery.lease_until.is_(None), DeliveryRecovery.lease_until < now),
        )
        .values(lease_until=now + lease())
    )
    db.session.commit()
    return result.rowcount == 1


def run(recovery_id: int) -> str:
    """One slice of a recovery (the ``deliveries`` queue): send, in order, at the rate."""
    if not _claim(recovery_id):
        return "not running, or another job runs it"
    recovery = db.session.get(DeliveryRecovery, recovery_id, populate_existing=True)
    interval = 1.0 / max(recovery.rate, 0.001)
    started = time.monotonic()
    next_send = started
    failures_in_a_row = 0
    while True:
        batch = db.session.scalars(_candidates(recovery).limit(BATCH)).all()
        if not batch:
            return _stop(recovery, "finished")
        for original in batch:
            reason = _why_stop(recovery)
            if reason:
                return reason
            target = _prepare(recovery, _latest(original))
            if target is None:
                outcome = "skipped"
            else:
                pause = next_send - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                next_send = time.monotonic() + interval
                service.deliver(target, force=True)
                outcome = _outcome(target)
            failures_in_a_row = failures_in_a_row + 1 if outcome == "failed" else 0
            _advance(recovery, original, outcome)
            if failures_in_a_row >= STOP_AFTER_FAILURES:
                return _stop(
                    recovery,
                    "stopped",
                    f"Stopped after {STOP_AFTER_FAILURES} failed deliveries in a row: the "
                    "receiver still fails. Fix it, then start a new recovery.",
                )
            # Every slice handles at least one delivery, then yields the worker in time.
            if time.monotonic() - started >= SLICE_SECONDS:
                return _next_slice(recovery, next_send)


def _next_slice(recovery: DeliveryRecovery, next_send: float) -> str:
    """Hand over to a new job (queued after the commit); the rate holds across slices."""
    pause = next_send - time.monotonic()
    if pause > 0:
        time.sleep(pause)
    recovery.lease_until = None
    recovery.queued_at = utcnow()
    db.session.commit()
    _queue(recovery.id)
    return f"slice done at {recovery.done}/{recovery.total}; the next slice is queued"


def _why_stop(recovery: DeliveryRecovery) -> str | None:
    """Why the job must stop before its next send (cancelled, destination changed), or None."""
    current = db.session.get(DeliveryRecovery, recovery.id, populate_existing=True)
    if current is None:  # its destination was deleted
        return "recovery deleted with its destination"
    if current.status != "running":
        return f"recovery {current.status}"
    destination = db.session.get(Destination, recovery.destination_id, populate_existing=True)
    if destination.disabled_at is not None or not destination.active:
        return _stop(
            recovery,
            "stopped",
            "Stopped: the destination was disabled or paused. Enable it and start again.",
        )
    recovery.lease_until = utcnow() + lease()
    db.session.commit()
    return None


def _latest(original: Delivery) -> Delivery:
    """The latest delivery of an event to the same destination."""
    return db.session.scalar(
        select(Delivery)
        .where(
            Delivery.destination_id == original.destination_id,
            Delivery.event_id == original.event_id,
        )
        .order_by(Delivery.id.desc())
        .limit(1)
    )


def _prepare(recovery: DeliveryRecovery, latest: Delivery) -> int | None:
    """The delivery to send for an event (committed, not due for the sweep), or None."""
    # Not due for the retry sweep while this job sends it; due later if the job dies.
    later = utcnow() + lease()
    if latest.status == "held":
        latest.status, latest.next_attempt_at, latest.recovery_id = "pending", later, recovery.id
    elif latest.status == "failed":
        latest = service.copy_of(latest, later, recovery.id)
    elif not (latest.status == "pending" and latest.recovery_id == recovery.id):
        return None  # delivered, or being retried on its own schedule
    # (A pending delivery of this recovery here was left by a job that died: send it now.)
    db.session.commit()
    return latest.id


def _outcome(delivery_id: int) -> str:
    status = db.session.scalar(select(Delivery.status).where(Delivery.id == delivery_id))
    return "sent" if status == "delivered" else "failed"


def _advance(recovery: DeliveryRecovery, original: Delivery, outcome: str) -> None:
    recovery.position = original.id
    recovery.position_at = original.created_at
    recovery.done += 1
    setattr(recovery, outcome, getattr(recovery, outcome) + 1)
    recovery.lease_until = utcnow() + lease()
    db.session.commit()


def _stop(recovery: DeliveryRecovery, status: str, message: str | None = None) -> str:
    _end(recovery, status, message)
    audit.record(
        "recovery",
        f"destination.recovery_{'finish' if status == 'finished' else 'stop'}",
        db.session.get(Destination, recovery.destination_id),
        recovery=recovery.id,
        sent=recovery.sent,
        failed=recovery.failed,
        skipped=recovery.skipped,
        message=message,
    )
    db.session.commit()
    return f"recovery {status}: {recovery.sent} sent, {recovery.failed} failed"
