"""Accepting WHOOP webhooks: verify, store before answering, queue; count rejections."""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app
from sqlalchemy import String, bindparam, case, event, literal, select
from sqlalchemy.exc import IntegrityError

from whoopadmin.audit import utcnow
from whoopadmin.connect.models import Link
from whoopadmin.dbutil import dialect_insert, insert_for
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection
from whoopadmin.webhooks.groupcommit import committer_for
from whoopadmin.webhooks.models import WebhookEvent, WebhookRejection
from whoopadmin.webhooks.signatures import check_partner, check_whoop

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
MEMBER_TYPES = {
    "sleep.updated",
    "sleep.deleted",
    "workout.updated",
    "workout.deleted",
    "recovery.updated",
    "recovery.deleted",
}
# The go-live check's own event: verified like any other, stored, never processed.
TEST_TYPE = "whoopadmin.test"
# Webhooks signed with the previous client secret are accepted this long after a rotation.
ROTATION_GRACE = timedelta(hours=24)
IGNORED_RESULT = "type not processed, or link revoked"


@dataclass(frozen=True)
class Outcome:
    """What to answer WHOOP: a status code and a short JSON body."""

    status: int
    body: dict


def count_rejection(connection: Connection | Receiver | None, reason: str) -> None:
    """Count a refused webhook for the connection's dashboard (signature failures matter).

    Refusals for no connection at all are only logged: there is nobody to show them to,
    and a row per attempt would let anyone fill the table.
    """
    if connection is None:
        log.info("webhook refused: %s", reason)
        return
    now = utcnow()
    table = WebhookRejection.__table__
    insert = dialect_insert()
    stmt = insert(table).values(
        connection_id=connection.id, reason=reason, day=now.date(), count=1, last_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["connection_id", "reason", "day"],
        set_={"count": table.c.count + 1, "last_at": stmt.excluded.last_at},
    )
    try:
        db.session.execute(stmt)
        db.session.commit()
    except Exception as exc:  # counting must never turn a 4xx into a 500
        db.session.rollback()
        log.warning("could not count a webhook rejection: %s", type(exc).__name__)


def reject(
    connection: Connection | Receiver | None, status: int, reason: str, message: str
) -> Outcome:
    count_rejection(connection, reason)
    return Outcome(status, {"error": reason, "message": message})


def signing_secrets(connection: Connection) -> list[str]:
    """The client secret, plus the previous one during a rotation's grace period."""
    secrets = [connection.client_secret] if connection.client_secret_sealed else []
    rotated = connection.secret_rotated_at
    if (
        connection.previous_client_secret_sealed
        and rotated is not None
        and utcnow() - rotated < ROTATION_GRACE
    ):
        secrets.append(connection.previous_client_secret)
    return secrets


def parse_member_event(body: bytes) -> dict | None:
    """The event's fields if the body is a well-formed v2 webhook, else None."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: deep nesting
        return None
    if not isinstance(data, dict):
        return None
    user_id, object_id = data.get("user_id"), data.get("id")
    event_type, trace_id = data.get("type"), data.get("trace_id")
    if isinstance(user_id, bool) or not isinstance(user_id, int) or not 0 < user_id < 2**63:
        return None
    if not isinstance(event_type, str) or not 0 < len(event_type) <= 64:
        return None
    if not isinstance(trace_id, str) or not 0 < len(trace_id) <= 128:
        return None
    if isinstance(object_id, int) and not isinstance(object_id, bool):
        object_id = str(object_id)  # WHOOP sends a string; tolerate a number
    if not isinstance(object_id, str) or not 0 < len(object_id) <= 128:
        return None
    if not all(value.isprintable() for value in (event_type, trace_id, object_id)):
        return None  # control characters (NUL above all) are never part of a real event
    return {"user_id": user_id, "id": object_id, "type": event_type, "trace_id": trace_id}


@dataclass(frozen=True)
class Receiver:
    """What checking and storing a member webhook needs of its connection."""

    id: int  # the connection's
    secrets: tuple[str, ...] = field(repr=False)  # never in a log line or a traceback


# Per process: (database, "host" | "client_id", value) -> (expires at, Receiver or None).
# Changes made in this process clear it at once (see ``_forget_receivers``); other
# processes see them after WEBHOOK_CONNECTION_CACHE_SECONDS.
_receivers: dict[tuple[str, str, str], tuple[float, Receiver | None]] = {}
_RECEIVERS_MAX = 1024  # unknown names are cached too; a flood of them must not grow it


@event.listens_for(Connection, "after_insert")
@event.listens_for(Connection, "after_update")
@event.listens_for(Connection, "after_delete")
def _forget_receivers(*_args) -> None:
    _receivers.clear()


MISS = object()  # ``cached_receiver``: not in the cache


def cached_receiver(config, kind: str, value: str) -> Receiver | None | object:
    """The cached answer of ``receiver`` (no app context needed), or ``MISS``."""
    cached = _receivers.get((config["SQLALCHEMY_DATABASE_URI"], kind, value))
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    return MISS


def receiver(kind: str, value: str) -> Receiver | None:
    """The connection answering at host name or client id ``value``, briefly cached."""
    if not value or len(value) > 255:
        return None
    config = current_app.config
    cached = cached_receiver(config, kind, value)
    if cached is not MISS:
        return cached
    ttl = float(config["WEBHOOK_CONNECTION_CACHE_SECONDS"])
    key = (config["SQLALCHEMY_DATABASE_URI"], kind, value)
    column = Connection.hostname if kind == "host" else Connection.client_id
    connection = db.session.scalar(select(Connection).where(column == value))
    found = None
    if connection is not None:
        found = Receiver(connection.id, tuple(signing_secrets(connection)))
    if ttl > 0:
        if len(_receivers) >= _RECEIVERS_MAX:
            _receivers.clear()
        _receivers[key] = (time.monotonic() + ttl, found)
    return found


def receive_member_event(
    target: Receiver | None, headers, body: bytes, now_ms: int | None = None
) -> Outcome:
    """Verify and store one member webhook, then queue it. Never raises."""
    if target is None:
        return reject(None, 404, "unknown_connection", "No connection answers here.")
    refusal, event_ = _verify(
        target,
        headers.get("X-WHOOP-Signature-Timestamp"),
        headers.get("X-WHOOP-Signature"),
        body,
        now_ms,
    )
    if refusal is not None:
        return reject(target, *refusal)
    if event_["type"] == TEST_TYPE:
        return _store_test_event(target, event_)
    stored = _store_member_event(target.id, event_, body)
    if stored is None:
        known_user = db.session.scalar(
            select(Link.id).where(
                Link.connection_id == target.id,
                Link.whoop_user_id == event_["user_id"],
            )
        )
        if known_user is None:
            return reject(target, 404, "unknown_user", "No linked member has this user id.")
        return Outcome(200, {"status": "duplicate"})  # a redelivery: stored and queued before
    return _queued(*stored)


def receive_stored(
    target: Receiver | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    app=None,
    engine=None,
) -> Outcome | None:
    """The common case alone: the answer once this webhook is stored, else None.

    None (nothing stored) for no connection, a refusal, a test event or a redelivery:
    ``receive_member_event`` then answers, and counts the refusal (webhooks.fastpath).
    With ``app`` and ``engine`` it needs no app context (the fast path's cache hits).
    """
    if target is None:
        return None
    refusal, event_ = _verify(target, timestamp, signature, body)
    if refusal is not None or event_["type"] == TEST_TYPE:
        return None
    stored = _store_member_event(target.id, event_, body, engine)
    return _queued(*stored, app=app) if stored is not None else None


def _verify(
    target: Receiver, timestamp: str | None, signature: str | None, body: bytes, now_ms=None
) -> tuple[tuple[int, str, str] | None, dict | None]:
    """(None, the event) for a signed, well-formed webhook; else (status, reason, message)."""
    if len(body) > MAX_BODY:
        return (413, "oversize", "The body is too large."), None
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    reason = check_whoop(list(target.secrets), timestamp, signature, body, now_ms)
    if reason:
        return (401, reason, "The webhook signature is not valid."), None
    event_ = parse_member_event(body)
    if event_ is None:
        return (400, "malformed", "The body is not a WHOOP v2 webhook."), None
    return None, event_


def _queued(event_id: int, status: str, app=None) -> Outcome:
    """Queue a stored event's processing (``received`` ones); the answer for WHOOP."""
    if status != "received":
        return Outcome(200, {"status": "ignored"})
    app = app if app is not None else current_app._get_current_object()
    if app.config["WEBHOOK_QUEUE_DELAY_SECONDS"] > 0:
        from whoopadmin.webhooks.handoff import handoff_for

        handoff_for(app).add(event_id)
    else:
        queue_event(event_id, fresh=True)
    return Outcome(200, {"status": "accepted"})


@functools.cache
def _store_statement(dialect: str):
    """INSERT … SELECT from the member's link, skipping a known trace id (built once)."""
    links, events = Link.__table__, WebhookEvent.__table__
    revoked = links.c.status == "revoked"
    columns = {
        "connection_id": bindparam("connection_id", type_=events.c.connection_id.type),
        "link_id": links.c.id,
        "source": literal("member"),
        "trace_id": bindparam("trace_id", type_=events.c.trace_id.type),
        "type": bindparam("type", type_=events.c.type.type),
        "whoop_user_id": bindparam("whoop_user_id", type_=events.c.whoop_user_id.type),
        "object_id": bindparam("object_id", type_=events.c.object_id.type),
        "status": case((revoked, "ignored"), else_=bindparam("status", type_=String)),
        "attempts": literal(0),
        "result": case((revoked, IGNORED_RESULT), else_=bindparam("result", type_=String)),
        "received_at": bindparam("received_at", type_=events.c.received_at.type),
        "body": bindparam("body", type_=events.c.body.type),
    }
    source = select(*columns.values()).where(
        links.c.connection_id == columns["connection_id"],
        links.c.whoop_user_id == columns["whoop_user_id"],
    )
    return (
        insert_for(dialect)(events)
        .from_select(list(columns), source)
        .on_conflict_do_nothing(index_elements=["connection_id", "trace_id"])
        .returning(events.c.id, events.c.status)
    )


def _refuse_constant(name: str):
    raise ValueError(name)


def stored_body(body: bytes, event_: dict) -> str:
    """The JSON text to store: the body as received, when PostgreSQL's ``json`` takes it.

    ``parse_member_event`` accepted it, so it is JSON to Python; PostgreSQL refuses only
    what Python alone accepts: ``NaN``/``Infinity``, a byte-order mark, UTF-16/32. Those
    rare bodies are stored as the event's fields, re-encoded.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return json.dumps(event_)
    if text.startswith("\ufeff") or "NaN" in text or "Infinity" in text:
        try:
            json.loads(text, parse_constant=_refuse_constant)
        except ValueError:
            return json.dumps(event_)
    return text


def _store_member_event(
    connection_id: int, event_: dict, body: bytes, engine=None
) -> tuple[int, str] | None:
    """Store the event for the connection's member with its user id, in one statement.

    Returns the new row's id and status, or None when no link has that user id or the
    trace id is stored already. The row is durable before this returns: on PostgreSQL
    committed by this process's group commit (``webhooks.groupcommit``, which raises
    ``StoreFailed`` if it was not), elsewhere in autocommit, outside the request's
    transaction.
    """
    known = event_["type"] in MEMBER_TYPES
    params = {
        "connection_id": connection_id,
        "trace_id": event_["trace_id"],
        "type": event_["type"],
        "whoop_user_id": event_["user_id"],
        "object_id": event_["id"],
        "status": "received" if known else "ignored",
        "result": None if known else IGNORED_RESULT,
        "received_at": utcnow(),
        "body": stored_body(body, event_),
    }
    engine = engine if engine is not None else db.engine
    if engine.dialect.name == "postgresql":
        return committer_for(engine, IGNORED_RESULT).store(params)
    params["body"] = json.loads(params["body"])
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        row = conn.execute(_store_statement(engine.dialect.name), params).first()
    return (row[0], row[1]) if row is not None else None


def _store_test_event(target: Receiver, event: dict) -> Outcome:
    db.session.add(
        WebhookEvent(
            connection_id=target.id,
            trace_id=event["trace_id"],
            type=TEST_TYPE,
            whoop_user_id=event["user_id"],
            object_id=event["id"],
            status="ignored",
            result="test event from the go-live check",
            body=event,
        )
    )
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return Outcome(200, {"status": "duplicate"})
    return Outcome(200, {"status": "test received"})


def send_test_event(connection: Connection, url: str, timeout: float = 10.0) -> tuple[str, str]:
    """Post a correctly signed test event to ``url``; return (trace id, what happened).

    ``*.localhost`` names are sent to 127.0.0.1 (RFC 6761), so the demo's URLs work
    without any resolver; other names resolve as usual.
    """
    import uuid
    from urllib.parse import urlsplit

    import requests

    from whoopadmin.webhooks.signatures import whoop_signature

    trace_id = f"whoopadmin-test-{uuid.uuid4()}"
    body = json.dumps(
        {"user_id": 1, "id": str(uuid.uuid4()), "type": TEST_TYPE, "trace_id": trace_id}
    ).encode()
    timestamp = str(int(time.time() * 1000))
    headers = {
        "Content-Type": "application/json",
        "X-WHOOP-Signature-Timestamp": timestamp,
        "X-WHOOP-Signature": whoop_signature(connection.client_secret, timestamp, body),
    }
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        headers["Host"] = parts.netloc
        url = parts._replace(netloc=f"127.0.0.1:{parts.port or 80}").geturl()
    try:
        response = requests.post(url, data=body, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        return trace_id, f"could not reach {parts.netloc} ({type(exc).__name__})"
    with response:
        if response.status_code == 200:
            return trace_id, "arrived"
        return trace_id, f"answered HTTP {response.status_code}"


def _test_key(connection_id: int) -> str:
    return f"whoopadmin:test-webhook:{connection_id}"


def queue_test_event(actor, connection: Connection) -> None:
    """Queue the go-live test webhook (a worker sends it: never the web request itself)."""
    from whoopadmin import audit
    from whoopadmin.jobs import enqueue_once
    from whoopadmin.redisconn import get_redis

    get_redis().set(_test_key(connection.id), "sending", ex=86400)
    enqueue_once(
        "webhooks",
        "whoopadmin.webhooks.jobs.send_test_event_job",
        connection.id,
        job_id=f"test-webhook-{connection.id}",
    )
    audit.record(actor, "connection.test_webhook", connection)
    db.session.commit()


def test_event_result(connection: Connection) -> str | None:
    """What the last test webhook send reported (``arrived``, ``sending`` or why not)."""
    from whoopadmin.redisconn import get_redis

    try:
        value = get_redis().get(_test_key(connection.id))
    except Exception:  # the page still renders without Redis
        return None
    return value.decode() if value else None


def record_test_result(connection_id: int, result: str) -> None:
    """Keep the send's outcome for the go-live page (a day)."""
    from whoopadmin.redisconn import get_redis

    get_redis().set(_test_key(connection_id), result[:300], ex=86400)


def last_test_event(connection: Connection) -> WebhookEvent | None:
    """The most recent test event that arrived for this connection."""
    return db.session.scalar(
        select(WebhookEvent)
        .where(WebhookEvent.connection_id == connection.id, WebhookEvent.type == TEST_TYPE)
        .order_by(WebhookEvent.id.desc())
        .limit(1)
    )


def queue_event(event_id: int, *, fresh: bool = False) -> bool:
    """Queue processing; if Redis is down the event stays ``received`` for the sweeper.

    ``fresh``: the event was stored just now, so no job for it can exist yet and the
    existence check (a Redis round trip on the hot path) is skipped.
    """
    from whoopadmin.jobs import RETRY, enqueue_once, get_queue

    job_id = f"webhook-{event_id}"
    func = "whoopadmin.webhooks.jobs.process_event"
    try:
        if fresh:
            queue = get_queue("webhooks")
            with queue.connection.pipeline() as pipe:  # one round trip
                queue.enqueue_call(
                    func, args=(event_id,), job_id=job_id, retry=RETRY, pipeline=pipe
                )
                pipe.execute()
        else:
            enqueue_once("webhooks", func, event_id, job_id=job_id, retry=RETRY)
    except Exception as exc:  # the event is stored; the sweeper queues it later
        log.warning("webhook %s stored, not queued: %s", event_id, type(exc).__name__)
        return False
    return True


def receive_partner_event(connection: Connection | None, headers, body: bytes) -> Outcome:
    """Verify and store one Partner API webhook (``WHOOP-Signed``)."""
    if connection is None:
        return reject(None, 404, "unknown_connection", "No connection answers here.")
    if len(body) > MAX_BODY:
        return reject(connection, 413, "oversize", "The body is too large.")
    secret = connection.webhook_signing_secret if connection.webhook_signing_secret_sealed else None
    reason = check_partner(secret, headers.get("WHOOP-Signed"), body)
    if reason:
        return reject(connection, 401, reason, "The partner webhook signature is not valid.")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: deep nesting
        data = None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("event_type"), str)
        or not isinstance(data.get("resource_id"), str | int)
        or isinstance(data.get("resource_id"), bool)
        or not all(str(data[k]).isprintable() for k in ("event_type", "resource_id"))
    ):
        return reject(connection, 400, "malformed", "The body is not a partner webhook.")
    import hashlib

    trace = hashlib.sha256(body).hexdigest()[:64]  # partner events carry no trace id
    db.session.add(
        WebhookEvent(
            connection_id=connection.id,
            source="partner",
            trace_id=f"partner:{trace}",
            type=data["event_type"][:64],
            object_id=str(data["resource_id"])[:128],
            status="ignored",
            result="partner events are stored for support; nothing to sync",
            body={"event_type": data["event_type"], "resource_id": data["resource_id"]},
        )
    )
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return Outcome(204, {})
    return Outcome(204, {})
