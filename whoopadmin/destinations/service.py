"""Destinations and deliveries: configure, emit events, deliver them signed, retry, re-send.

Retries use a column, not RQ's scheduler: a delivery that fails gets ``next_attempt_at``
from ``BACKOFF`` and stays ``pending``; the periodic ``retry_due`` (every minute) queues
every pending delivery that is due. A delivery whose job was never queued (Redis down
at emit time) or whose worker died is picked up by the same sweep, so nothing is lost.

A disabled destination (``controls.py``) still gets its deliveries, stored ``held`` and
not attempted, until a recovery (``recovery.py``) sends them.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, select, update

from whoopadmin import audit
from whoopadmin.audit import utcnow
from whoopadmin.destinations import signing, standard, transport
from whoopadmin.destinations.models import (
    EVENT_TYPES,
    TEST_EVENT,
    Delivery,
    DeliveryRecovery,
    Destination,
)
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection

log = logging.getLogger(__name__)

# Seconds to wait after the 1st, 2nd, … failed attempt; after the last, the delivery fails.
BACKOFF = (60, 300, 1800, 7200, 21600)
MAX_ATTEMPTS = len(BACKOFF) + 1
MAX_DESTINATIONS = 10
SECRET_PREFIX = standard.PREFIX
# Every event, its user and its record name the provider: WHOOP is the first, not the last.
PROVIDER = "whoop"
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
    """A new signing secret (shown once, stored sealed): ``whsec_`` + base64 of 32 bytes."""
    return standard.new_secret(secrets.token_bytes(standard.KEY_BYTES))


def setting(name: str) -> float:
    """A numeric deliveries setting from the app config (checked at start-up)."""
    return float(current_app.config[name])


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
    """Replace the signing secret; return the new one (shown once).

    The old secret keeps signing beside the new one (sealed in ``previous_secret``) for
    ``DESTINATION_SECRET_OVERLAP_HOURS`` (0: it stops at once), or until the operator
    ends the overlap. Rotating again during an overlap drops the oldest secret.
    """
    now = utcnow()
    hours = setting("DESTINATION_SECRET_OVERLAP_HOURS")
    replaced_overlap = overlap_until(destination, now) is not None
    secret = generate_secret()
    if hours > 0:
        destination.previous_secret = destination.signing_secret
        destination.previous_secret_expires_at = now + timedelta(hours=hours)
    else:
        destination.previous_secret = None
        destination.previous_secret_expires_at = None
    destination.signing_secret = secret
    destination.secret_rotated_at = now
    audit.record(
        actor,
        "destination.rotate_secret",
        destination,
        overlap_until=iso(destination.previous_secret_expires_at),
        dropped_previous_overlap=replaced_overlap,
    )
    db.session.commit()
    return secret


def overlap_until(destination: Destination, now: datetime | None = None) -> datetime | None:
    """When the previous secret stops signing, or None if it no longer signs."""
    expires = destination.previous_secret_expires_at
    if destination.previous_secret_sealed is None or expires is None:
        return None
    return expires if expires > (now or utcnow()) else None


def signing_secrets(destination: Destination, now: datetime | None = None) -> list[str]:
    """The secrets that sign a delivery now: the current one, then the previous in overlap."""
    secrets_ = [destination.signing_secret]
    if overlap_until(destination, now) is not None:
        secrets_.append(destination.previous_secret)
    return secrets_


def iso(value) -> str | None:
    """An ISO 8601 text of a datetime, or None (for audit details and event data)."""
    return value.isoformat() if value is not None else None


def delete_destination(actor, destination: Destination) -> None:
    """Delete a destination, its delivery log and its recoveries."""
    audit.record(actor, "destination.delete", destination, url=destination.url)
    db.session.execute(
        update(Delivery)
        .where(Delivery.destination_id == destination.id)
        .values(resend_of_id=None, recovery_id=None)
    )
    db.session.execute(delete(Delivery).where(Delivery.destination_id == destination.id))
    db.session.execute(
        delete(DeliveryRecovery).where(DeliveryRecovery.destination_id == destination.id)
    )
    db.session.delete(destination)
    db.session.commit()


# --------------------------------------------------------------------------- emitting


# What a ping keeps of an event's data: identifiers only, never health data.
PING_DATA_KEYS = ("record_type", "id", "whoop_id", "destination_id")


def _payload(
    event_id: str, event_type: str, connection: Connection, link, data: Any, mode: str, at: str
) -> str:
    """The JSON body of an event: the whole event ("full") or its ids only ("ping")."""
    user = None
    if link is not None:
        user = {"provider": PROVIDER, "user_id": link.uid, "reference_id": link.reference_id}
        if mode == "full":
            user["provider_user_id"] = str(link.whoop_user_id)
            user["whoop_user_id"] = link.whoop_user_id
    document = {
        "id": event_id,
        "provider": PROVIDER,
        "type": event_type,
        "created_at": at,
        "environment": connection.environment,
        "user": user,
        "data": data,
    }
    if mode == "ping":
        kept = {k: data[k] for k in PING_DATA_KEYS if isinstance(data, dict) and k in data}
        document.update(mode="ping", data=kept or None)
    return json.dumps(document, separators=(",", ":"), sort_keys=True, default=str)


@dataclass(frozen=True)
class _Target:
    """A destination an event goes to: its id, its payload mode, whether it is held."""

    id: int
    mode: str
    held: bool


def _wanting(connection_id: int, event_type: str, only_enabled: bool = False) -> list[_Target]:
    """The active destinations of a connection that take ``event_type`` (one query)."""
    rows = db.session.execute(
        select(
            Destination.id, Destination.events, Destination.payload_mode, Destination.disabled_at
        ).where(Destination.connection_id == connection_id, Destination.active.is_(True))
    ).all()
    return [
        _Target(row.id, row.payload_mode or "full", row.disabled_at is not None)
        for row in rows
        if event_type in (row.events or []) and not (only_enabled and row.disabled_at)
    ]


def _create(
    targets: list[_Target], connection: Connection, event_type: str, data, link
) -> list[int]:
    """Store one delivery per target and commit; return the ids of those to send now."""
    now = utcnow()
    event_id = f"evt_{uuid.uuid4().hex}"
    at = now.isoformat().replace("+00:00", "Z")
    bodies = {
        mode: _payload(event_id, event_type, connection, link, data, mode, at)
        for mode in {t.mode for t in targets}
    }
    rows = [
        Delivery(
            destination_id=target.id,
            connection_id=connection.id,
            event_id=event_id,
            event_type=event_type,
            payload=bodies[target.mode],
            link_id=getattr(link, "id", None),
            # A disabled destination's deliveries wait, unattempted, for a recovery.
            status="held" if target.held and event_type != TEST_EVENT else "pending",
            next_attempt_at=None if target.held and event_type != TEST_EVENT else now,
            history=[],
        )
        for target in targets
    ]
    db.session.add_all(rows)
    db.session.commit()
    return [row.id for row in rows if row.status == "pending"]


def emit(
    connection_id: int,
    event_type: str,
    data: Any,
    link=None,
    exclude: int | None = None,
    only_enabled: bool = False,
) -> int:
    """Create a delivery for each active destination that wants ``event_type``; queue them.

    Call it **after** committing your own change (it commits its rows). It never raises:
    a failure is logged and the caller carries on. With no destination it costs one
    indexed query. ``exclude`` leaves one destination out; ``only_enabled`` leaves the
    disabled ones out (which would otherwise hold the event). Returns the number of
    deliveries created.
    """
    try:
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
        if getattr(link, "status", None) == "erasing":
            return 0  # nothing is delivered for a user whose erasure is scheduled
        targets = [t for t in _wanting(connection_id, event_type, only_enabled) if t.id != exclude]
        if not targets:
            return 0
        connection = db.session.get(Connection, connection_id)
        if connection is None:
            return 0
        delivery_ids = _create(targets, connection, event_type, data, link)
    except Exception:
        log.exception("could not emit %s for connection %s", event_type, connection_id)
        try:
            db.session.rollback()
        except Exception:  # pragma: no cover - the session is beyond saving
            log.exception("rollback after a failed emit failed")
        return 0
    for delivery_id in delivery_ids:
        queue_delivery(delivery_id)
    return len(targets)


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
        "provider": PROVIDER,
        "record_type": type_,
        "id": whoop_id,
        "whoop_id": whoop_id,  # the same as "id", kept for existing backends
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
    # A disabled destination still gets its test events: they show whether it works again.
    target = _Target(destination.id, destination.payload_mode or "full", False)
    (delivery_id,) = _create([target], connection, TEST_EVENT, data, None)
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


def _claim(delivery: Delivery, lease: timedelta, force: bool = False) -> int | None:
    """Take the next attempt of a due delivery; None if it is not due or another took it.

    ``force`` takes it whenever it is due (a recovery sends its deliveries itself, in
    order); the compare-and-swap on ``attempts`` still lets only one taker through.
    """
    now = utcnow()
    attempt = (delivery.attempts or 0) + 1
    conditions = [
        Delivery.id == delivery.id,
        Delivery.status == "pending",
        Delivery.attempts == (delivery.attempts or 0),
    ]
    if not force:
        conditions.append(Delivery.next_attempt_at <= now + EARLY)
    result = db.session.execute(
        update(Delivery)
        .where(*conditions)
        .values(attempts=attempt, last_attempt_at=now, next_attempt_at=now + lease)
    )
    db.session.commit()
    return attempt if result.rowcount == 1 else None


def headers_for(
    delivery: Delivery, secret: str | list[str], attempt: int, t: int | None = None
) -> dict[str, str]:
    """The headers of one attempt: both signature schemes (fresh timestamp), the event's names.

    ``secret`` may be a list (a rotation's overlap): every header then carries one
    signature per secret, the first secret's first.
    """
    secrets_ = [secret] if isinstance(secret, str) else list(secret)
    t = int(time.time()) if t is None else int(t)
    body = delivery.payload.encode()
    return {
        signing.HEADER: signing.sign(secrets_, body, t),
        **standard.headers(secrets_, delivery.event_id, t, body),
        "User-Agent": "whoopadmin-deliveries/1",
        "whoopadmin-event-id": delivery.event_id,
        "whoopadmin-event-type": delivery.event_type,
        "whoopadmin-delivery-attempt": str(attempt),
    }


def deliver(delivery_id: int, force: bool = False) -> str:
    """Post one due delivery (queue ``deliveries``); idempotent, never raises for the network.

    The destination's URL is checked again now (its name may resolve elsewhere since it
    was saved) and the request goes to the address that passed the check. A delivery of
    a disabled destination is not attempted: it is held for a recovery. ``force``: see
    ``_claim``.
    """
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or delivery.status != "pending":
        return "nothing to do"
    if delivery.link_id is not None and _erasing(delivery.link_id):
        # Waits (no attempt used): erased with the user, or sent if the erasure is undone.
        delivery.next_attempt_at = utcnow() + timedelta(hours=1)
        db.session.commit()
        return "postponed: the user's erasure is scheduled"
    destination = db.session.get(Destination, delivery.destination_id)
    if destination is not None and destination.disabled_at and delivery.event_type != TEST_EVENT:
        return _hold(delivery)
    timeout = float(current_app.config.get("DESTINATION_TIMEOUT", 10.0))
    attempt = _claim(delivery, timedelta(seconds=2 * timeout + 60), force)
    if attempt is None:
        return "not due, or taken by another worker"
    delivery = db.session.get(Delivery, delivery_id, populate_existing=True)
    if destination is None or not destination.active:
        return _finish(delivery, attempt, transport.Answer(None, 0, "destination paused"), True)
    try:
        target = transport.check(destination.url, allow_private(), resolver=transport.resolve)
    except transport.DestinationRefused as exc:
        answer = transport.Answer(None, 0, f"refused: {exc}")
    else:
        headers = headers_for(delivery, signing_secrets(destination), attempt)
        ca_certs = current_app.config.get("DESTINATION_CA_BUNDLE") or None
        answer = transport.post(target, delivery.payload.encode(), headers, timeout, ca_certs)
    _note_outcome(destination.id, answer.ok)
    return _finish(delivery, attempt, answer)


def _erasing(link_id: int) -> bool:
    """Whether the link's erasure is scheduled (status ``erasing``)."""
    from whoopadmin.connect.models import Link

    return db.session.scalar(select(Link.status).where(Link.id == link_id)) == "erasing"


def _hold(delivery: Delivery) -> str:
    """Keep a pending delivery of a disabled destination for a recovery (not attempted)."""
    result = db.session.execute(
        update(Delivery)
        .where(Delivery.id == delivery.id, Delivery.status == "pending")
        .values(status="held", next_attempt_at=None)
    )
    db.session.commit()
    return "held: the destination is disabled" if result.rowcount else "nothing to do"


def _note_outcome(destination_id: int, ok: bool) -> None:
    """Start (first failure) or end (a success) the destination's run of failures.

    One conditional UPDATE in the attempt's own transaction; it changes a row only when
    the state flips, so a destination that works costs no write beyond the delivery's.
    """
    if ok:
        statement = (
            update(Destination)
            .where(Destination.id == destination_id, Destination.failing_since.is_not(None))
            .values(failing_since=None)
        )
    else:
        statement = (
            update(Destination)
            .where(Destination.id == destination_id, Destination.failing_since.is_(None))
            .values(failing_since=utcnow())
        )
    db.session.execute(statement.execution_options(synchronize_session=False))


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
    if delivery.status in ("pending", "held"):
        raise DestinationError(
            "This delivery is still being sent."
            if delivery.status == "pending"
            else "This delivery waits for a recovery: enable the destination and recover it."
        )
    destination = db.session.get(Destination, delivery.destination_id)
    if destination is not None and destination.disabled_at is not None:
        raise DestinationError("The destination is disabled: enable it first.")
    copy = copy_of(delivery, utcnow())
    audit.record(actor, "delivery.resend", delivery, new_delivery=copy.id)
    db.session.commit()
    queue_delivery(copy.id)
    return copy


def copy_of(delivery: Delivery, next_attempt_at, recovery_id: int | None = None) -> Delivery:
    """A new pending delivery of the same event (same id and body), flushed, not committed."""
    copy = Delivery(
        destination_id=delivery.destination_id,
        connection_id=delivery.connection_id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        payload=delivery.payload,
        link_id=delivery.link_id,
        status="pending",
        next_attempt_at=next_attempt_at,
        history=[],
        resend_of_id=delivery.id,
        recovery_id=recovery_id,
    )
    db.session.add(copy)
    db.session.flush()
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
