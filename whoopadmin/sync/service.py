"""Fetching WHOOP data for a link and storing it: raw records plus normalised indicators."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, select, update

from whoopadmin import audit
from whoopadmin.audit import utcnow
from whoopadmin.connect.models import Link, LinkEvent
from whoopadmin.dbutil import kept_across_commits, upsert
from whoopadmin.destinations.service import emit, emit_rate_limit, emit_records
from whoopadmin.extensions import db
from whoopadmin.health import calls, missed
from whoopadmin.redisconn import get_redis
from whoopadmin.setup.models import Connection
from whoopadmin.sync.models import Indicator, SyncRun, WhoopRecord
from whoopadmin.sync.tokens import SCOPE_ERROR, LinkTokens, link_event
from whoopadmin.whoop import normalise as norm
from whoopadmin.whoop.api import WhoopError
from whoopadmin.whoop.client import WhoopClient
from whoopadmin.whoop.ratelimit import RateBudget

log = logging.getLogger(__name__)

# (record type, API collection), in the order a backfill walks them.
COLLECTIONS = (
    ("cycle", "cycle"),
    ("sleep", "activity/sleep"),
    ("recovery", "recovery"),
    ("workout", "activity/workout"),
)
RECONCILE_DAYS = 3
# The record types WHOOP sends webhooks for (cycles and the body measurement have none).
WEBHOOK_TYPES = ("sleep", "recovery", "workout")


class LinkInactive(Exception):
    """The link cannot be synced (revoked, or WHOOP wants the member to reconnect)."""


def budget_for(connection: Connection, purpose: str | None = None) -> RateBudget:
    """The WHOOP app's shared request budget (one per client id, in Redis).

    Low-priority purposes (backfill, reconciliation, re-syncs) get a view of it that
    leaves ``HEALTH_BUDGET_RESERVE`` of each window to webhook-driven fetches.
    """
    reserve = 0.0
    if purpose in calls.LOW_PRIORITY:
        reserve = float(current_app.config["HEALTH_BUDGET_RESERVE"])
    return RateBudget(
        get_redis(),
        connection.client_id,
        connection.rate_limit_per_minute,
        connection.rate_limit_per_day,
        # Only tests shorten the window; WHOOP's is a minute.
        minute_seconds=float(current_app.config.get("WHOOP_RATE_MINUTE_SECONDS", 60)),
        reserve=reserve,
    )


def client_for(link: Link, purpose: str = calls.WEBHOOK) -> WhoopClient:
    """A WHOOP client for this link: its tokens, its app's budget, its calls counted."""
    connection = db.session.get(Connection, link.connection_id)
    return WhoopClient(
        current_app.config["WHOOP_API_BASE"],
        LinkTokens(link.id),
        budget=budget_for(connection, purpose),
        timeout=float(current_app.config["WHOOP_TIMEOUT"]),
        max_retries=int(current_app.config.get("WHOOP_MAX_RETRIES", 3)),
        backoff=float(current_app.config.get("WHOOP_BACKOFF", 0.5)),
        meter=calls.meter(connection.id, purpose),
    )


def _ts(value) -> datetime | None:
    return norm.parse_timestamp(value)


def store(link: Link, kind: str, records: Iterable[dict], reason: str | None = None) -> int:
    """Upsert raw records and their indicators; a re-sync of unchanged data changes nothing.

    ``reason`` is the sync's (``backfill``, ``reconcile``, ``resync``): new or changed
    records it stores that no webhook announced are counted as missed webhooks.
    """
    records = list(records)
    if not records:
        return 0
    type_ = norm.canonical_kind(kind)
    raw_rows, keyed = [], {}
    now = utcnow()
    for record in records:
        try:
            _, whoop_id = norm.record_key(kind, record, link.whoop_user_id)
        except ValueError:
            log.warning("link %s: skipped a %s record without an id", link.id, type_)
            continue
        keyed[whoop_id] = record
    for whoop_id, record in keyed.items():
        raw_rows.append(
            {
                "link_id": link.id,
                "type": type_,
                "whoop_id": whoop_id,
                "start": _ts(record.get("start")) or _ts(record.get("created_at")),
                "end": _ts(record.get("end")),
                "whoop_updated_at": str(record.get("updated_at") or "")[:40] or None,
                "score_state": str(record.get("score_state") or "")[:24] or None,
                "deleted": False,
                "raw": record,
                "fetched_at": now,
            }
        )
    # Records edited at WHOOP lose their old indicators first (a score can disappear).
    stored = dict(
        db.session.execute(
            select(WhoopRecord.whoop_id, WhoopRecord.whoop_updated_at).where(
                WhoopRecord.link_id == link.id,
                WhoopRecord.type == type_,
                WhoopRecord.whoop_id.in_(list(keyed)),
            )
        ).all()
    )
    changed = [
        r["whoop_id"]
        for r in raw_rows
        if stored.get(r["whoop_id"], r["whoop_updated_at"]) != r["whoop_updated_at"]
    ]
    if changed:
        db.session.execute(
            delete(Indicator).where(
                Indicator.link_id == link.id,
                Indicator.record_type == type_,
                Indicator.whoop_id.in_(changed),
            )
        )
    upsert(
        WhoopRecord,
        raw_rows,
        keys=["link_id", "type", "whoop_id"],
        update=["start", "end", "whoop_updated_at", "score_state", "deleted", "raw", "fetched_at"],
    )
    indicator_rows = []
    starts = {r["whoop_id"]: r["start"] for r in raw_rows}
    # A record's indicators all carry its start and end: parse each text once.
    parsed: dict[str | None, datetime | None] = {}
    for whoop_id, record in keyed.items():
        for item in norm.normalise(kind, record, link.whoop_user_id):
            numeric = isinstance(item.value, int | float)
            if item.start not in parsed:
                parsed[item.start] = _ts(item.start)
            if item.end not in parsed:
                parsed[item.end] = _ts(item.end)
            indicator_rows.append(
                {
                    "link_id": link.id,
                    "record_type": type_,
                    "whoop_id": whoop_id,
                    "name": item.name,
                    "value": float(item.value) if numeric else None,
                    "text": None if numeric else str(item.value)[:100],
                    "unit": item.unit,
                    # Recoveries have no span of their own: use when WHOOP made them.
                    "start": parsed[item.start] or starts[whoop_id],
                    "end": parsed[item.end],
                }
            )
    upsert(
        Indicator,
        indicator_rows,
        keys=["link_id", "record_type", "whoop_id", "name"],
        update=["value", "text", "unit", "start", "end"],
    )
    db.session.commit()
    # Data events for new or changed records only: a re-sync of unchanged data sends none.
    changed_ids = set(changed)
    fresh = [keyed[w] for w in keyed if w not in stored or w in changed_ids]
    emit_records(link, kind, fresh)
    if reason in calls.LOW_PRIORITY and fresh:
        missed.count_unannounced(link, type_, fresh)
    return len(raw_rows)


def mark_deleted(link: Link, type_: str, whoop_id: str, *, also: tuple[str, ...] = ()) -> bool:
    """Mark a record deleted at WHOOP and drop its indicators; return whether it existed.

    ``also``: other record types stored under the same WHOOP id that go with it (a
    sleep's recovery), handled in the same transaction.
    """
    link_id, types = link.id, (type_, *also)
    result = db.session.execute(
        update(WhoopRecord)
        .where(
            WhoopRecord.link_id == link_id,
            WhoopRecord.type.in_(types),
            WhoopRecord.whoop_id == whoop_id,
        )
        .values(deleted=True, fetched_at=utcnow())
        .returning(WhoopRecord.type)
    )
    existed = type_ in set(result.scalars())
    db.session.execute(
        delete(Indicator).where(
            Indicator.link_id == link_id,
            Indicator.record_type.in_(types),
            Indicator.whoop_id == whoop_id,
        )
    )
    db.session.commit()
    return existed


def _record_run(
    link: Link, type_: str, reason: str, count: int, outcome: str, error=None, started=None
):
    db.session.add(
        SyncRun(
            link_id=link.id,
            type=type_,
            reason=reason,
            records=count,
            outcome=outcome,
            error=error,
            started_at=started or utcnow(),
            finished_at=utcnow(),
        )
    )
    db.session.commit()


def active_link(link_id: int) -> Link:
    """The link, if it may be synced; else LinkInactive."""
    link = db.session.get(Link, link_id)
    if link is None or link.status not in ("active", "error"):
        raise LinkInactive(f"link {link_id} is not active")
    return link


def sync_window(
    link_id: int,
    start: datetime,
    end: datetime | None = None,
    reason: str = "backfill",
    types: tuple[str, ...] | None = None,
    body: bool = True,
    tracker=None,
) -> dict[str, int]:
    """Fetch the collections (``types``: all by default) in ``[start, end)`` plus the
    body measurement (unless ``body`` is false); store all.

    A reconciliation or re-sync also marks deleted what WHOOP no longer has: stored
    records of a walked collection that start inside the window (a day clear of its
    start, where WHOOP's own filtering is fuzzy) and that the walk did not return.
    ``tracker``: a ``data.backfills.Tracker`` told of each type and page as it is stored.
    """
    with kept_across_commits():
        return _sync_window(link_id, start, end, reason, types, body, tracker)


def _sync_window(
    link_id: int,
    start: datetime,
    end: datetime | None,
    reason: str,
    types: tuple[str, ...] | None = None,
    body: bool = True,
    tracker=None,
) -> dict:
    link = active_link(link_id)
    counts: dict[str, int] = {}
    purpose = reason if reason in calls.LOW_PRIORITY else calls.RESYNC
    with client_for(link, purpose) as client:
        if body:
            try:
                started = utcnow()
                if tracker:
                    tracker.begin_type("body_measurement")
                measurement = client.body_measurement()
                counts["body_measurement"] = store(link, "body_measurement", [measurement])
                _record_run(link, "body_measurement", reason, 1, "ok", started=started)
            except WhoopError as exc:
                if exc.code == "unauthorized":
                    _unauthorized(link, reason)
                    raise LinkInactive(f"link {link_id}: WHOOP refused its tokens") from None
                if exc.code != "not_found":
                    _record_run(link, "body_measurement", reason, 0, "error", exc.code)
                    if exc.code != "insufficient_scope":
                        if exc.code == "rate_limited" and not getattr(exc, "reserved", False):
                            emit_rate_limit(link.connection_id, exc.retry_after, link=link)
                        raise
                    insufficient_scope(link, "body_measurement", reason)
            if tracker:
                tracker.end_type("body_measurement", counts.get("body_measurement", 0))
        for type_, collection in COLLECTIONS:
            if types is not None and type_ not in types:
                continue
            started = utcnow()
            count = 0
            returned: set[str] = set()
            if tracker:
                tracker.begin_type(type_)
            try:
                for page in client.iter_pages(collection, start, end):
                    stored = store(link, collection, page, reason)
                    count += stored
                    returned.update(_whoop_ids(link, collection, page))
                    if tracker:
                        tracker.page(type_, page, stored)
            except WhoopError as exc:
                _record_run(link, type_, reason, count, "error", exc.code, started)
                if exc.code == "rate_limited" and not getattr(exc, "reserved", False):
                    emit_rate_limit(link.connection_id, exc.retry_after, link=link)
                if exc.code == "unauthorized":
                    _unauthorized(link, reason)
                    raise LinkInactive(f"link {link_id}: WHOOP refused its tokens") from None
                if exc.code == "insufficient_scope":
                    # Retrying cannot help; the other collections may still be granted.
                    insufficient_scope(link, type_, reason)
                    if tracker:
                        tracker.end_type(type_)
                    continue
                raise  # transient: the job is retried, and storing is idempotent
            counts[type_] = count
            if reason in ("reconcile", "resync"):
                gone = sweep_deleted(link, type_, start, end or started, started, returned)
                if gone:
                    counts[f"{type_}_deleted"] = gone
            _record_run(link, type_, reason, count, "ok", started=started)
            if tracker:
                tracker.end_type(type_, count)
    return counts


def _whoop_ids(link: Link, collection: str, page: list[dict]) -> set[str]:
    ids = set()
    for record in page:
        try:
            ids.add(norm.record_key(collection, record, link.whoop_user_id)[1])
        except ValueError:
            continue
    return ids


# Records this close to a window's start are not judged gone: WHOOP filters by its own
# notion of a record's span (a recovery's by its sleep), not by the start stored here.
SWEEP_MARGIN = timedelta(days=1)


def sweep_deleted(
    link: Link,
    type_: str,
    start: datetime,
    end: datetime,
    walk_started: datetime,
    returned: set[str],
) -> int:
    """Mark deleted the stored ``type_`` records in ``[start + margin, end)`` that a
    complete walk of the window did not return (deleted at WHOOP while its webhook was
    missed); return how many. Records stored since the walk began are left alone."""
    rows = db.session.scalars(
        select(WhoopRecord.whoop_id).where(
            WhoopRecord.link_id == link.id,
            WhoopRecord.type == type_,
            WhoopRecord.deleted.is_(False),
            WhoopRecord.start >= start + SWEEP_MARGIN,
            WhoopRecord.start < end,
            WhoopRecord.fetched_at < walk_started,
        )
    ).all()
    gone = [whoop_id for whoop_id in rows if whoop_id not in returned]
    for whoop_id in gone:
        mark_deleted(link, type_, whoop_id)
    if gone:
        log.info("link %s: %d %s record(s) gone at WHOOP", link.id, len(gone), type_)
    return len(gone)


def _unauthorized(link: Link, reason: str) -> None:
    db.session.add(
        LinkEvent(
            connection_id=link.connection_id,
            link_id=link.id,
            kind="sync_failed",
            reason="unauthorized",
            details={"sync": reason},
        )
    )
    db.session.commit()


def insufficient_scope(link: Link, record_type: str, reason: str) -> None:
    """WHOOP refused ``record_type`` for lack of scope: the link is ``error`` until the
    member connects again and grants it (a refresh cannot widen a grant).

    The first time, the link turns ``error`` (support sees the reason) and
    ``connection_error`` is delivered; each later refusal is only on the timeline.
    """
    current = db.session.get(Link, link.id, populate_existing=True)
    already = current.status == "error" and (current.status_reason or "").startswith(SCOPE_ERROR)
    if not already:
        current.status = "error"
        current.status_reason = (
            f"{SCOPE_ERROR}: WHOOP refused {record_type.replace('_', ' ')} data for lack of "
            f"scope (granted: {current.scopes or 'none'}); the member must connect again and "
            "allow it"
        )[:500]
    for kind in ("sync_failed",) if already else ("sync_failed", "link_error"):
        link_event(current, kind, SCOPE_ERROR, sync=reason, record_type=record_type)
    db.session.commit()
    if not already:
        emit(
            current.connection_id,
            "connection_error",
            {
                "reason": SCOPE_ERROR,
                "record_type": record_type,
                "scopes": (current.scopes or "").split(),
            },
            link=current,
        )


def backfill_window(link: Link, days: int | None = None) -> tuple[datetime, datetime]:
    """The backfill on connect: ``days`` (the connect session's), else the connection's."""
    connection = db.session.get(Connection, link.connection_id)
    end = utcnow()
    return end - timedelta(days=days or connection.backfill_days or 30), end


def request_resync(actor, link: Link, start: datetime, end: datetime) -> None:
    """Queue a re-sync of ``link`` over ``[start, end)`` for ``actor`` (an API key, staff),
    audited as ``link.backfill``; LinkInactive when the link cannot be synced.

    One queued re-sync per link at a time (the job id): asking again while one waits
    changes nothing but the log.
    """
    from whoopadmin.sync.jobs import queue_resync

    if link.status not in ("active", "error"):
        raise LinkInactive(f"The link is {link.status}; it cannot be synced.")
    audit.record(actor, "link.backfill", link, start=start.isoformat(), end=end.isoformat())
    db.session.commit()
    # After the commit: a job never runs for a request that was rolled back.
    queue_resync(link.id, start, end, job_id=f"api-backfill-{link.id}")


def stored_cycle_id(link: Link, sleep_id: str) -> int | None:
    """The cycle of a sleep already stored (a sleep never moves to another cycle)."""
    raw = db.session.scalar(
        select(WhoopRecord.raw).where(
            WhoopRecord.link_id == link.id,
            WhoopRecord.type == "sleep",
            WhoopRecord.whoop_id == str(sleep_id),
            WhoopRecord.deleted.is_(False),
        )
    )
    cycle_id = raw.get("cycle_id") if isinstance(raw, dict) else None
    return cycle_id if isinstance(cycle_id, int) and not isinstance(cycle_id, bool) else None


def apply_event(link: Link, event_type: str, object_id: str) -> str:
    """Fetch (or delete) the one object a webhook names; return what was done.

    A recovery event names its sleep: the recovery is read through the sleep's cycle,
    taken from the stored sleep when there is one (its ``sleep.updated`` came with it and
    was fetched just before), else from WHOOP — one call per event, not two.
    """
    kind, _, action = event_type.partition(".")
    if action == "deleted":  # nothing to ask WHOOP
        also = ("recovery",) if kind == "sleep" else ()  # a sleep's recovery goes with it
        done = mark_deleted(link, kind, object_id, also=also)
        return "deleted" if done else "deleted (was not stored)"
    with client_for(link, calls.WEBHOOK) as client:
        try:
            if kind == "sleep":
                store(link, "sleep", [client.sleep(object_id)])
                return "sleep stored"
            if kind == "workout":
                store(link, "workout", [client.workout(object_id)])
                return "workout stored"
            if kind == "recovery":
                # A recovery has no id of its own: the event names the sleep; the recovery
                # belongs to that sleep's cycle.
                cycle_id = stored_cycle_id(link, object_id)
                if cycle_id is None:
                    sleep = client.sleep(object_id)
                    store(link, "sleep", [sleep])
                    cycle_id = int(sleep["cycle_id"])
                store(link, "recovery", [client.cycle_recovery(cycle_id)])
                return "recovery stored"
        except WhoopError as exc:
            if exc.code == "not_found":  # gone at WHOOP since the event was sent
                mark_deleted(link, kind, object_id)
                return "not found at WHOOP: marked deleted"
            if exc.code == "insufficient_scope":
                insufficient_scope(link, kind, "webhook")
                raise LinkInactive(
                    f"link {link.id}: WHOOP refused {kind} (insufficient scope)"
                ) from None
            if exc.code == "rate_limited":
                emit_rate_limit(link.connection_id, exc.retry_after, link=link)
            raise
    return "ignored"
