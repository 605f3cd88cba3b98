"""Destinations and deliveries: configure, emit events, deliver them signed, retry, re-send.

Retries use a column, not RQ's scheduler: a delivery that fails gets ``next_attempt_at``
from ``BACKOFF`` and stays ``pending``; the periodic ``retry_due`` (every minute) queues
every pending delivery that is due. A delivery whose job was never queued (Redis down
at emit time) or whose worker died is picked up by the same sweep, so nothing is lost.
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, select, update

from whoopadmin import audit
from whoopadmin.audit import utcnow
from whoopadmin.destinations import signing, transport
from whoopadmin.destinations.models import (
    EVENT_TYPES,
    TEST_EVENT,
    Delivery,
    Destination,
)
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection

log = logging.getLogger(__name__)

# Seconds to wait after the 1st, 2nd, … failed attempt; after the last, the delivery fails.
BACKOFF = (60, 300, 1800, 7200, 21600)
MAX_ATTEMPTS = len(BACKOFF) + 1
MAX_DESTINATIONS = 10
SECRET_PREFIX = "whsec_"
# A queued job may run a little early (clocks, the sweep's granularity).
EARLY = timedelta(seconds=5)


class DestinationError(ValueError):
    """A destination cannot be saved as given; ``field`` names the form field at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def allow_private() -> bool:
    """Whether private, loopback and link-local destinations are allowed (development)."""
    return bool(current_app.config.get("ALLOW_PRIVATE_DESTINATIONS", False))


def generate_secret() -> str:
    """A new signing secret (shown once, stored sealed)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


# --------------------------------------------------------------------------- destinations


def list_destinations(connection: Connection | None = None) -> list[Destination]:
    """Every destination (of one connection, if given), oldest first."""
    query = select(Destination).order_by(Destination.connection_id, Destination.id)
    if connection is not None:
        query = query.where(Destination.connection_id == connection.id)
    return list(db.session.scalars(query))


def get_destination(destination_id: int) -> Destination | None:
    """The destination with this id, if any."""
    return db.session.get(Destination, destination_id)


# Said when a URL is refused for a private address, so a developer knows the way out.
PRIVATE_HINT = (
    "To deliver to private addresses during development, set "
    "WHOOPADMIN_ALLOW_PRIVATE_DESTINATIONS=true (never in production)."
)


def check_url(url: str) -> str:
    """The URL, trimmed, if it may be a destination now; DestinationError (field url) if not."""
    url = (url or "").strip()
    try:
        transport.check(url, allow_private(), resolver=transport.resolve)
    except transport.DestinationRefused as exc:
        message = f"{exc} {PRIVATE_HINT}" if exc.private else str(exc)
        raise DestinationError(message, "url") from None
    return url


def check_events(events: Iterable[str]) -> list[str]:
    """The event types, known and de-duplicated in the documented order."""
    chosen = set(events or [])
    unknown = chosen - set(EVENT_TYPES)
    if unknown:
        raise DestinationError(f"Unknown event type: {', '.join(sorted(unknown))}.", "events")
    if not chosen:
        raise DestinationError("Choose at least one event type.", "events")
    return [e for e in EVENT_TYPES if e in chosen]


def create_destination(
    actor, connection: Connection, url: str, events: Iterable[str], active: bool = True
) -> tuple[Destination, str]:
    """Create a destination; return it and its signing secret (the only time it is readable)."""
    url = check_url(url)
    events = check_events(events)
    count = len(list_destinations(connection))
    if count >= MAX_DESTINATIONS:
        raise DestinationError(
            f"A connection can have at most {MAX_DESTINATIONS} destinations.", "url"
        )
    destination = Destination(
        connection_id=connection.id,
        url=url,
        events=events,
        active=bool(active),
        created_by=getattr(actor, "email", None) or str(actor),
    )
    secret = generate_secret()
    destination.signing_secret = secret
    destination.secret_rotated_at = utcnow()
    db.session.add(destination)
    db.session.flush()
    audit.record(actor, "destination.create", destination, url=url, events=events)
    db.session.commit()
    return destination, secret


def update_destination(
    actor, destination: Destination, url: str, events: Iterable[str], active: bool
) -> bool:
    """Change a destination's URL, events and active flag; return whether anything changed."""
    url = check_url(url)
    events = check_events(events)
    changes = {}
    if url != destination.url:
        changes["url"] = url
    if events != list(destination.events or []):
        changes["events"] = events
    if bool(active) != destination.active:
        changes["active"] = bool(active)
    if not changes:
        return False
    for name, value in changes.items():
        setattr(destination, name, value)
    audit.record(actor, "destination.update", destination, **changes)
    db.session.commit()
    return True


def rotate_secret(actor, destination: Destination) -> str:
    """Replace the signing secret; return the new one (shown once). The old one stops now."""
    secret = generate_secret()
    destination.signing_secret = secret
    destination.secret_rotated_at = utcnow()
    audit.record(actor, "destination.rotate_secret", destination)
    db.session.commit()
    return secret


def delete_destination(actor, destination: Destination) -> None:
    """Delete a destination and its delivery log."""
    audit.record(actor, "destination.delete", destination, url=destination.url)
    db.session.execute(
        update(Delivery).where(Delivery.destination_id == destination.id).values(resend_of_id=None)
    )
    db.session.execute(delete(Delivery).where(Delivery.destination_id == destination.id))
    db.session.delete(destination)
    db.session.commit()


# --------------------------------------------------------------------------- emitting


def _payload(event_id: str, event_type: str, connection: Connection, link, data: Any) -> str:
    user = None
    if link is not None:
        user = {
            "user_id": link.uid,
            "reference_id": link.reference_id,
            "whoop_user_id": link.whoop_user_id,
        }
    document = {
        "id": event_id,
        "type": event_type,
        "created_at": utcnow().isoformat().replace("+00:00", "Z"),
        "environment": connection.environment,
        "user": user,
        "data": data,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True, default=str)


def _wanting(connection_id: int, event_type: str) -> list[int]:
    """Ids of the active destinations of a connection that take ``event_type``."""
    rows = db.session.execute(
        select(Destination.id, Destination.events).where(
            Destination.connection_id == connection_id, Destination.active.is_(True)
        )
    ).all()
    return [row.id for row in rows if event_type in (row.events or [])]


def _create(
    destination_ids: list[int], connection: Connection, event_type: str, data, link
) -> list[int]:
    now = utcnow()
    event_id = f"evt_{uuid.uuid4().hex}"
    body = _payload(event_id, event_type, connection, link, data)
    rows = [
        Delivery(
            destination_id=destination_id,
            connection_id=connection.id,
            event_id=event_id,
            event_type=event_type,
            payload=body,
            link_id=getattr(link, "id", None),
            status="pending",
            next_attempt_at=now,
            history=[],
        )
        for destination_id in destination_ids
    ]
    db.session.add_all(rows)
    db.session.commit()
    return [row.id for row in rows]


def emit(connection_id: int, event_type: str, data: Any, link=None) -> int:
    """Create a delivery for each active destination that wants ``event_type``; queue them.

    Call it **after** committing your own change (it commits its rows). It never raises:
    a failure is logged and the caller carries on. With no destination it costs one
    indexed query. Returns the number of deliveries created.
    """
    try:
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
        destination_ids = _wanting(connection_id, event_type)
        if not destination_ids:
            return 0
        connection = db.session.get(Connection, connection_id)
        if connection is None:
            return 0
        delivery_ids = _create(destination_ids, connection, event_type, data, link)
    except Exception:
        log.exception("could not emit %s for connection %s", event_type, connection_id)
        try:
            db.session.rollback()
        except Exception:  # pragma: no cover - the session is beyond saving
            log.exception("rollback after a failed emit failed")
        return 0
    for delivery_id in delivery_ids:
        queue_delivery(delivery_id)
    return len(delivery_ids)


# Record types of the sync module → data event types.
DATA_EVENT_FOR = {
    "sleep": "sleep",
    "recovery": "recovery",
    "workout": "workout",
    "cycle": "cycle",
    "body_measurement": "body",
}


def record_data(kind: str, record: dict, user_id: int | None) -> dict:
    """The data of a data event: the record's identity and its normalised indicators."""
    from whoopadmin.whoop import normalise as norm

    type_, whoop_id = norm.record_key(kind, record, user_id)
    return {
        "record_type": type_,
        "whoop_id": whoop_id,
        "start": record.get("start"),
        "end": record.get("end"),
        "timezone_offset": record.get("timezone_offset"),
        "score_state": record.get("score_state"),
        "updated_at": record.get("updated_at"),
        "indicators": [
            {"name": i.name, "value": i.value, "unit": i.unit}
            for i in norm.normalise(kind, record, user_id)
        ],
    }


def emit_records(link, kind: str, records: Iterable[dict]) -> int:
    """Emit one data event per record (``kind`` as ``sync.service.store`` takes it).

    Pass only new or changed records: a re-sync of unchanged data should send nothing.
    Never raises; costs one query when no destination wants this type.
    """
    try:
        from whoopadmin.whoop import normalise as norm

        event_type = DATA_EVENT_FOR[norm.canonical_kind(kind)]
        if not _wanting(link.connection_id, event_type):
            return 0
        sent = 0
        for record in records:
            try:
                data = record_data(kind, record, link.whoop_user_id)
            except ValueError:
                continue
            sent += emit(link.connection_id, event_type, data, link=link)
        return sent
    except Exception:
        log.exception("could not emit %s records for link %s", kind, getattr(link, "id", None))
        return 0


def emit_rate_limit(connection_id: int, retry_after: float | None = None, link=None) -> int:
    """Emit ``rate_limit_hit`` once per pause of a connection's WHOOP app; never raises.

    Every job that meets the pause would report it; a Redis key (``SET NX`` for the
    pause's length, at least a minute) lets only the first one through.
    """
    try:
        from whoopadmin.redisconn import get_redis

        seconds = max(60, int(retry_after or 0))
        if not get_redis().set(
            f"whoopadmin:rate-limit-event:{connection_id}", 1, nx=True, ex=seconds
        ):
            return 0
    except Exception:
        log.exception("could not emit rate_limit_hit for connection %s", connection_id)
        return 0
    data = {"retry_after": retry_after, "message": "WHOOP's rate limit was reached."}
    return emit(connection_id, "rate_limit_hit", data, link=link)


def send_test(actor, destination: Destination) -> Delivery:
    """Queue a signed ``test`` event to this one destination (whatever its filter)."""
    connection = db.session.get(Connection, destination.connection_id)
    data = {"message": "A test event from whoopadmin.", "destination_id": destination.id}
    (delivery_id,) = _create([destination.id], connection, TEST_EVENT, data, None)
    audit.record(actor, "destination.test", destination)
    db.session.commit()
    queue_delivery(delivery_id)
    return db.session.get(Delivery, delivery_id)


# --------------------------------------------------------------------------- delivering


def queue_delivery(delivery_id: int) -> bool:
    """Queue ``deliver``; if Redis is down the delivery stays due for ``retry_due``."""
    from whoopadmin.jobs import enqueue_once

    try:
        enqueue_once(
            "deliveries",
            "whoopadmin.destinations.service.deliver",
            delivery_id,
            job_id=f"delivery-{delivery_id}",
        )
    except Exception as exc:
        log.warning("delivery %s stored, not queued: %s", delivery_id, type(exc).__name__)
        return False
    return True


def retry_due(limit: int = 500) -> int:
    """Queue every pending delivery that is due (cron: every minute); return how many."""
    ids = db.session.scalars(
        select(Delivery.id)
        .where(Delivery.status == "pending", Delivery.next_attempt_at <= utcnow())
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
    ).all()
    return sum(1 for delivery_id in ids if queue_delivery(delivery_id))


def _claim(delivery: Delivery, lease: timedelta) -> int | None:
    """Take the next attempt of a due delivery; None if it is not due or another took it."""
    now = utcnow()
    attempt = (delivery.attempts or 0) + 1
    result = db.session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery.id,
            Delivery.status == "pending",
            Delivery.attempts == (delivery.attempts or 0),
            Delivery.next_attempt_at <= now + EARLY,
        )
        .values(attempts=attempt, last_attempt_at=now, next_attempt_at=now + lease)
    )
    db.session.commit()
    return attempt if result.rowcount == 1 else None


def headers_for(delivery: Delivery, secret: str, attempt: int) -> dict[str, str]:
    """The headers of one attempt: the signature (fresh timestamp) and the event's names."""
    return {
        signing.HEADER: signing.sign(secret, delivery.payload.encode()),
        "User-Agent": "whoopadmin-deliveries/1",
        "whoopadmin-event-id": delivery.event_id,
        "whoopadmin-event-type": delivery.event_type,
        "whoopadmin-delivery-attempt": str(attempt),
    }


def deliver(delivery_id: int) -> str:
    """Post one due delivery (queue ``deliveries``); idempotent, never raises for the network.

    The destination's URL is checked again now (its name may resolve elsewhere since it
    was saved) and the request goes to the address that passed the check.
    """
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or delivery.status != "pending":
        return "nothing to do"
    timeout = float(current_app.config.get("DESTINATION_TIMEOUT", 10.0))
    attempt = _claim(delivery, timedelta(seconds=2 * timeout + 60))
    if attempt is None:
        return "not due, or taken by another worker"
    delivery = db.session.get(Delivery, delivery_id, populate_existing=True)
    destination = db.session.get(Destination, delivery.destination_id)
    if destination is None or not destination.active:
        return _finish(delivery, attempt, transport.Answer(None, 0, "destination paused"), True)
    try:
        target = transport.check(destination.url, allow_private(), resolver=transport.resolve)
    except transport.DestinationRefused as exc:
        answer = transport.Answer(None, 0, f"refused: {exc}")
    else:
        headers = headers_for(delivery, destination.signing_secret, attempt)
        ca_certs = current_app.config.get("DESTINATION_CA_BUNDLE") or None
        answer = transport.post(target, delivery.payload.encode(), headers, timeout, ca_certs)
    return _finish(delivery, attempt, answer)


def _finish(delivery: Delivery, attempt: int, answer: transport.Answer, final=False) -> str:
    now = utcnow()
    delivery.last_status_code = answer.status
    delivery.last_latency_ms = answer.latency_ms
    delivery.last_error = (answer.error or "")[:300] or None
    if answer.status is not None and not answer.ok:
        delivery.last_error = f"HTTP {answer.status}"
    delivery.history = [
        *(delivery.history or [])[-19:],
        {
            "at": now.isoformat(),
            "attempt": attempt,
            "status_code": answer.status,
            "latency_ms": answer.latency_ms,
            "error": delivery.last_error,
        },
    ]
    if answer.ok:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = "delivered", now, None
        outcome = f"delivered (HTTP {answer.status}, {answer.latency_ms} ms)"
    elif final or attempt >= MAX_ATTEMPTS:
        delivery.status, delivery.next_attempt_at = "failed", None
        outcome = f"failed after {attempt} attempts: {delivery.last_error}"
    else:
        delivery.next_attempt_at = now + timedelta(seconds=BACKOFF[attempt - 1])
        outcome = f"attempt {attempt} failed ({delivery.last_error}); retry at " + (
            delivery.next_attempt_at.isoformat()
        )
    db.session.commit()
    return outcome


def resend(actor, delivery: Delivery) -> Delivery:
    """Send a delivery's event again, as a new delivery with the same event id and body."""
    if delivery.status == "pending":
        raise DestinationError("This delivery is still being sent.")
    copy = Delivery(
        destination_id=delivery.destination_id,
        connection_id=delivery.connection_id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        payload=delivery.payload,
        link_id=delivery.link_id,
        status="pending",
        next_attempt_at=utcnow(),
        history=[],
        resend_of_id=delivery.id,
    )
    db.session.add(copy)
    db.session.flush()
    audit.record(actor, "delivery.resend", delivery, new_delivery=copy.id)
    db.session.commit()
    queue_delivery(copy.id)
    return copy


def recent_deliveries(destination: Destination, limit: int = 50) -> list[Delivery]:
    """A destination's latest deliveries, newest first."""
    return list(
        db.session.scalars(
            select(Delivery)
            .where(Delivery.destination_id == destination.id)
            .order_by(Delivery.id.desc())
            .limit(limit)
        )
    )
