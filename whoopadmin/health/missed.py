"""Missed-webhook accounting: records reconciliation stores that no webhook announced.

**Announced** (the definition the counts rest on): a stored record version (type, WHOOP
id, WHOOP's ``updated_at``) was announced when a member webhook event of the same type
family (``sleep.*`` for a sleep, ``recovery.*`` for a recovery, keyed by its sleep UUID,
``workout.*`` for a workout) for the same link and object id was *received* (stored, not
necessarily processed yet) no earlier than ``updated_at`` minus
``HEALTH_ANNOUNCE_SKEW_SECONDS`` (clocks differ).

**Judged** are only new or changed records that a backfill, a reconciliation or a
re-sync stores (webhook-driven fetches announce themselves) and only when:

* the type has webhooks at all (cycles and body measurements never do);
* the version changed at WHOOP *after the link connected* (``links.connected_at``, reset
  by a reconnect): the backfill on connect stores months of records no webhook could
  have announced, and none of them counts;
* it changed at least ``HEALTH_MISSED_GRACE_SECONDS`` ago: a younger change may still
  have its webhook on the way. (Such a record is then stored and never judged: the
  count errs low, never high.)

Counts go to ``missed_webhooks`` per connection, day found and record type, and to the
connection's ``webhook_activity.missed_since_webhook`` for silent-webhook detection.
Every new or changed record of any type (cycles too) also moves
``webhook_activity.last_change_at`` on: members are active.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import case, select

from whoopadmin.audit import utcnow
from whoopadmin.dbutil import dialect_insert
from whoopadmin.extensions import db
from whoopadmin.health.models import MissedWebhookCount, WebhookActivity
from whoopadmin.webhooks.models import WebhookEvent
from whoopadmin.whoop import normalise as norm

log = logging.getLogger(__name__)

# Record types WHOOP sends webhooks for.
ANNOUNCED_TYPES = ("sleep", "recovery", "workout")


def count_unannounced(link, type_: str, records: list[dict], now: datetime | None = None) -> int:
    """Count the records among ``records`` (new or changed, just stored) no webhook announced.

    Returns how many were counted; never raises (accounting must not break a sync).
    """
    if not records:
        return 0
    try:
        return _count(link, type_, records, now or utcnow())
    except Exception as exc:
        db.session.rollback()
        log.warning("link %s: missed-webhook accounting failed: %s", link.id, type(exc).__name__)
        return 0


def _count(link, type_: str, records: list[dict], now: datetime) -> int:
    config = current_app.config
    grace = timedelta(seconds=float(config["HEALTH_MISSED_GRACE_SECONDS"]))
    skew = timedelta(seconds=float(config["HEALTH_ANNOUNCE_SKEW_SECONDS"]))
    connected = link.connected_at
    versions = []
    for record in records:
        updated = norm.parse_timestamp(record.get("updated_at"))
        if updated is not None and (connected is None or updated > connected):
            versions.append((updated, record))
    if not versions:
        return 0
    _note_change(link.connection_id, max(updated for updated, _ in versions))
    if type_ not in ANNOUNCED_TYPES:
        db.session.commit()
        return 0
    judged: dict[str, datetime] = {}
    for updated, record in versions:
        if updated > now - grace:
            continue
        try:
            _, whoop_id = norm.record_key(type_, record, link.whoop_user_id)
        except ValueError:
            continue
        judged[whoop_id] = updated
    if not judged:
        db.session.commit()
        return 0
    announced = set()
    rows = db.session.execute(
        select(WebhookEvent.object_id, WebhookEvent.type, WebhookEvent.received_at).where(
            WebhookEvent.link_id == link.id,
            WebhookEvent.received_at >= min(judged.values()) - skew,
            WebhookEvent.object_id.in_(list(judged)),
        )
    ).all()
    for object_id, event_type, received_at in rows:
        if event_type.partition(".")[0] == type_ and received_at >= judged[object_id] - skew:
            announced.add(object_id)
    missed = len(judged) - len(announced)
    if missed:
        _add(link.connection_id, type_, missed, now)
    db.session.commit()
    return missed


def _note_change(connection_id: int, changed_at: datetime) -> None:
    """Members are active: move ``last_change_at`` on to ``changed_at`` (never back)."""
    activity = WebhookActivity.__table__
    stmt = dialect_insert()(activity).values(connection_id=connection_id, last_change_at=changed_at)
    newer = case(
        (
            (activity.c.last_change_at.is_(None))
            | (activity.c.last_change_at < stmt.excluded.last_change_at),
            stmt.excluded.last_change_at,
        ),
        else_=activity.c.last_change_at,
    )
    db.session.execute(
        stmt.on_conflict_do_update(index_elements=["connection_id"], set_={"last_change_at": newer})
    )


def _add(connection_id: int, type_: str, n: int, now: datetime) -> None:
    insert = dialect_insert()
    table = MissedWebhookCount.__table__
    stmt = insert(table).values(
        connection_id=connection_id, day=now.date(), record_type=type_, count=n, last_at=now
    )
    db.session.execute(
        stmt.on_conflict_do_update(
            index_elements=["connection_id", "day", "record_type"],
            set_={"count": table.c.count + n, "last_at": stmt.excluded.last_at},
        )
    )
    activity = WebhookActivity.__table__
    stmt = insert(activity).values(
        connection_id=connection_id, missed_since_webhook=n, last_missed_at=now
    )
    db.session.execute(
        stmt.on_conflict_do_update(
            index_elements=["connection_id"],
            set_={
                "missed_since_webhook": activity.c.missed_since_webhook + n,
                "last_missed_at": stmt.excluded.last_missed_at,
            },
        )
    )
