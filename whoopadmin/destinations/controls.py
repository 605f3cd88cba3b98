"""A destination's controls beyond its form: payload mode, the secret overlap, disable/enable.

Each state change records an audit event in the same transaction. The two cron passes
(``end_expired_overlaps``, ``disable_failing``) run from ``destinations/jobs.py``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, select

from whoopadmin import audit
from whoopadmin.audit import utcnow
from whoopadmin.destinations.models import PAYLOAD_MODES, Delivery, Destination
from whoopadmin.destinations.service import DestinationError, emit, iso, setting
from whoopadmin.extensions import db

log = logging.getLogger(__name__)

# Why a destination is disabled.
FAILING = "failing"
OPERATOR = "operator"


def set_mode(actor, destination: Destination, mode: str) -> bool:
    """Send full events or pings (ids only) to this destination; return whether it changed."""
    if mode not in PAYLOAD_MODES:
        raise DestinationError("Choose full events or pings.", "mode")
    if (destination.payload_mode or "full") == mode:
        return False
    old, destination.payload_mode = destination.payload_mode, mode
    audit.record(actor, "destination.mode", destination, old=old, new=mode)
    db.session.commit()
    return True


def end_overlap(actor, destination: Destination) -> None:
    """Stop the previous signing secret now and forget it; DestinationError if there is none."""
    if destination.previous_secret_sealed is None:
        raise DestinationError("There is no previous signing secret: no overlap to end.")
    _drop_previous(destination)
    audit.record(actor, "destination.end_overlap", destination)
    db.session.commit()


def _drop_previous(destination: Destination) -> None:
    destination.previous_secret = None
    destination.previous_secret_expires_at = None


def end_expired_overlaps() -> int:
    """Forget every previous secret whose overlap is over (cron); return how many."""
    rows = db.session.scalars(
        select(Destination).where(
            Destination.previous_secret_sealed.is_not(None),
            Destination.previous_secret_expires_at <= utcnow(),
        )
    ).all()
    for destination in rows:
        _drop_previous(destination)
        audit.record("cron", "destination.end_overlap", destination, reason="expired")
    db.session.commit()
    return len(rows)


def disable(actor, destination: Destination, reason: str = OPERATOR) -> None:
    """Hold this destination's deliveries (stored, not attempted) until it is enabled."""
    if destination.disabled_at is not None:
        raise DestinationError("This destination is already disabled.")
    if not destination.active:
        raise DestinationError("This destination is paused: it takes no events to hold.")
    destination.disabled_at = utcnow()
    destination.disabled_reason = reason
    audit.record(
        actor,
        "destination.disable",
        destination,
        reason=reason,
        failing_since=iso(destination.failing_since),
    )
    db.session.commit()


def enable(actor, destination: Destination) -> dict:
    """Deliver to a disabled destination again; return the times a recovery could start from.

    The run of failures starts afresh (the next failure starts a new one), and the held
    deliveries stay held until a recovery sends them.
    """
    if destination.disabled_at is None:
        raise DestinationError("This destination is not disabled.")
    offer = {"disabled_at": destination.disabled_at, "failing_since": destination.failing_since}
    destination.disabled_at = None
    destination.disabled_reason = None
    destination.failing_since = None
    audit.record(actor, "destination.enable", destination, held=held_count(destination.id))
    db.session.commit()
    return offer


def held_count(destination_id: int) -> int:
    """How many of a destination's deliveries wait for a recovery."""
    return db.session.scalar(
        select(func.count(Delivery.id)).where(
            Delivery.destination_id == destination_id, Delivery.status == "held"
        )
    )


def disable_failing() -> int:
    """Disable every destination whose attempts have all failed too long (cron).

    "Too long" is ``DESTINATION_DISABLE_AFTER_DAYS`` since the first failure of the run
    (``failing_since``, cleared by any successful attempt). The operator learns of it
    from the audit log, the destination pages and the health signals; the connection's
    other enabled destinations get a ``destination.disabled`` event (the failing one
    cannot be told). Returns how many were disabled.
    """
    cutoff = utcnow() - timedelta(days=setting("DESTINATION_DISABLE_AFTER_DAYS"))
    rows = db.session.scalars(
        select(Destination).where(
            Destination.active.is_(True),
            Destination.disabled_at.is_(None),
            Destination.failing_since <= cutoff,
        )
    ).all()
    for destination in rows:
        disable("cron", destination, FAILING)
        log.warning(
            "destination %s disabled: every attempt failed since %s",
            destination.id,
            destination.failing_since,
        )
        emit(
            destination.connection_id,
            "destination.disabled",
            {
                "destination_id": destination.id,
                "host": urlsplit(destination.url).hostname,
                "failing_since": iso(destination.failing_since),
                "disabled_at": iso(destination.disabled_at),
                "message": "Every delivery to this destination failed for "
                f"{setting('DESTINATION_DISABLE_AFTER_DAYS'):g} days: it is disabled and its "
                "events are held until it is enabled and recovered.",
            },
            exclude=destination.id,
            only_enabled=True,
        )
    return len(rows)
