"""Queries behind the support console: link search, details, the timeline, and actions."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, union_all

from whoopadmin import audit
from whoopadmin.audit import AuditEvent, utcnow
from whoopadmin.connect import counts as link_counts
from whoopadmin.connect import service as connect_service
from whoopadmin.connect.models import Link, LinkEvent
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection
from whoopadmin.support import wording
from whoopadmin.sync.models import Indicator, SyncRun, WhoopRecord
from whoopadmin.webhooks.models import WebhookEvent

PAGE_SIZE = 50
STATUSES = ("active", "reauth_required", "revoked", "error", "erasing")


@dataclass
class LinkFilters:
    """What the list is narrowed to; every field optional."""

    q: str = ""
    status: str = ""
    connection_id: int | None = None
    environment: str = ""

    def clean(self) -> LinkFilters:
        """Drop values that cannot match (unknown status, overlong search)."""
        self.q = (self.q or "").strip()[:255]
        if self.status not in STATUSES:
            self.status = ""
        self.environment = (self.environment or "").strip().lower()[:64]
        return self


def _filtered(filters: LinkFilters):
    query = select(Link)
    if filters.q:
        terms = [Link.reference_id == filters.q, Link.uid == filters.q]
        if filters.q.isdigit() and len(filters.q) <= 19:
            terms.append(Link.whoop_user_id == int(filters.q))
        if "@" in filters.q:
            terms.append(Link.email_hash == connect_service.email_hash(filters.q))
        query = query.where(or_(*terms))
    if filters.status:
        query = query.where(Link.status == filters.status)
    if filters.connection_id:
        query = query.where(Link.connection_id == filters.connection_id)
    if filters.environment:
        query = query.join(Connection, Connection.id == Link.connection_id).where(
            Connection.environment == filters.environment
        )
    return query


def list_links(filters: LinkFilters, before: int | None = None, limit: int = PAGE_SIZE):
    """One page of links, newest first, after the keyset cursor ``before`` (a link id).

    Keyset pagination (``id < before``) stays fast at any depth and stable while new
    links arrive, unlike OFFSET.
    """
    query = _filtered(filters.clean()).order_by(Link.id.desc()).limit(limit + 1)
    if before:
        query = query.where(Link.id < before)
    rows = list(db.session.scalars(query))
    more = len(rows) > limit
    return rows[:limit], (rows[limit - 1].id if more else None)


def status_counts(filters: LinkFilters) -> dict[str, int]:
    """How many links of each status match the filters (ignoring the status filter).

    Without a search, from the counts the database keeps (``connect.counts``): no scan of
    ``links``, however many there are. A search narrows to a few links by index: counted.
    """
    scope = LinkFilters(filters.q, "", filters.connection_id, filters.environment).clean()
    if scope.q:
        sub = _filtered(scope).with_only_columns(Link.status).subquery()
        rows = db.session.execute(select(sub.c.status, func.count()).group_by(sub.c.status))
        return {status: count for status, count in rows.all()}
    if not scope.connection_id and not scope.environment:
        return link_counts.counts()
    ids = select(Connection.id)
    if scope.connection_id:
        ids = ids.where(Connection.id == scope.connection_id)
    if scope.environment:
        ids = ids.where(Connection.environment == scope.environment)
    return link_counts.counts(list(db.session.scalars(ids)))


def connections_by_id() -> dict[int, Connection]:
    """Every connection, by id (few: one per environment)."""
    return {c.id: c for c in db.session.scalars(select(Connection))}


# --------------------------------------------------------------------------- detail


@dataclass
class TimelineItem:
    """One entry of a link's timeline."""

    at: datetime
    kind: str
    title: str
    detail: str = ""
    tone: str = "secondary"
    data: dict[str, Any] = field(default_factory=dict)


def _newer(query, column, items: list[TimelineItem], limit: int):
    """Narrow ``query`` to rows recent enough to join the newest ``limit`` timeline items.

    Once ``limit`` items are in hand, anything older than the ``limit``-th newest of them
    cannot make the list, so the next source is read only down to that time.
    """
    if len(items) < limit:
        return query
    return query.where(column >= heapq.nlargest(limit, (item.at for item in items))[-1])


def _recent(link: Link, at, columns: tuple, items: list[TimelineItem], limit: int):
    """The link's newest rows of ``at``'s table by time (``at`` first, then ``columns``)."""
    model = at.class_
    query = (
        select(at, *columns)
        .where(model.link_id == link.id)
        .order_by(at.desc(), model.id.desc())
        .limit(limit)
    )
    return db.session.execute(_newer(query, at, items, limit))


def timeline(link: Link, limit: int = 200) -> list[TimelineItem]:
    """Everything that happened to the link, newest first: one list from every source.

    Each source is read newest first by time, as plain columns (no ORM objects, no webhook
    bodies), and only as far back as can still make the list. None is read with
    ``WHERE link_id = … ORDER BY id DESC LIMIT n``: PostgreSQL may answer that by walking
    the primary key backwards through the whole table when the link has few rows.
    """
    from whoopadmin.destinations.models import Delivery

    items: list[TimelineItem] = []
    events = _recent(
        link, LinkEvent.at, (LinkEvent.kind, LinkEvent.reason, LinkEvent.details), items, limit
    )
    tones = {
        "connect": "success",
        "user_reauth": "info",
        "reference_changed": "warning",
        "scopes_narrowed": "danger",
        "scopes_changed": "info",
        "token_refresh": "secondary",
        "disconnect": "dark",
    }
    for e in events:
        failed = "failed" in e.kind or e.kind in ("reauth_required", "link_error")
        title, detail = wording.describe_event(e.kind, e.reason, e.details)
        items.append(
            TimelineItem(
                e.at,
                e.kind,
                title,
                detail,
                "danger" if failed else tones.get(e.kind, "secondary"),
            )
        )
    hooks = _recent(
        link,
        WebhookEvent.received_at,
        (WebhookEvent.type, WebhookEvent.trace_id, WebhookEvent.status, WebhookEvent.result),
        items,
        limit,
    )
    for h in hooks:
        items.append(
            TimelineItem(
                h.received_at,
                "webhook",
                f"Webhook {h.type}",
                f"trace id {h.trace_id} · {h.status}" + (f" · {h.result}" if h.result else ""),
                "danger" if h.status == "failed" else "primary",
                {"trace_id": h.trace_id},
            )
        )
    runs = _recent(
        link,
        SyncRun.finished_at,
        (SyncRun.reason, SyncRun.type, SyncRun.records, SyncRun.outcome, SyncRun.error),
        items,
        limit,
    )
    for r in runs:
        items.append(
            TimelineItem(
                r.finished_at,
                "job",
                f"{wording.humanise(r.reason)} of {r.type.replace('_', ' ')}",
                f"{wording.counted(r.records, 'record')} · {r.outcome}"
                + (f" ({r.error})" if r.error else ""),
                "danger" if r.outcome == "error" else "light",
            )
        )
    deliveries = _recent(
        link,
        Delivery.created_at,
        (Delivery.event_type, Delivery.status, Delivery.attempts, Delivery.last_status_code),
        items,
        limit,
    )
    for d in deliveries:
        code = f" · HTTP {d.last_status_code}" if d.last_status_code else ""
        items.append(
            TimelineItem(
                d.created_at,
                "delivery",
                f"Delivery of {d.event_type}",
                f"{d.status} after {wording.counted(d.attempts, 'attempt')}{code}",
                "danger" if d.status == "failed" else "info",
            )
        )
    # Served by ix_audit_events_target (target_type, target_id, id).
    actions = db.session.execute(
        _newer(
            select(AuditEvent.at, AuditEvent.action, AuditEvent.actor), AuditEvent.at, items, limit
        )
        .where(AuditEvent.target_type == "links", AuditEvent.target_id == str(link.id))
        .order_by(AuditEvent.id.desc())
        .limit(limit)
    )
    for a in actions:
        items.append(
            TimelineItem(
                a.at,
                "staff",
                wording.action_text(a.action),
                f"by {a.actor}",
                "warning",
            )
        )
    items.sort(key=lambda item: item.at, reverse=True)
    return items[:limit]


SUMMARY_TYPES = ("cycle", "sleep", "recovery", "workout", "body_measurement")


def sync_summary(link: Link) -> list[dict[str, Any]]:
    """Per data type: stored records, the last sync and its outcome."""
    stored = {
        type_: (count, newest)
        for type_, count, newest in db.session.execute(
            select(WhoopRecord.type, func.count(), func.max(WhoopRecord.start))
            .where(WhoopRecord.link_id == link.id, WhoopRecord.deleted.is_(False))
            .group_by(WhoopRecord.type)
        ).all()
    }
    # The newest run of each type, each read from ix_sync_runs_link_type_at: one query,
    # however many runs the link has.
    newest_runs = union_all(
        *(
            select(
                select(SyncRun.id)
                .where(SyncRun.link_id == link.id, SyncRun.type == type_)
                .order_by(SyncRun.finished_at.desc(), SyncRun.id.desc())
                .limit(1)
                .subquery()
                .c.id
            )
            for type_ in SUMMARY_TYPES
        )
    )
    latest = {
        run.type: run
        for run in db.session.scalars(select(SyncRun).where(SyncRun.id.in_(newest_runs)))
    }
    out = []
    for type_ in SUMMARY_TYPES:
        run = latest.get(type_)
        count, newest = stored.get(type_, (0, None))
        out.append(
            {
                "type": type_,
                "records": count,
                "last_sync": run.finished_at if run else None,
                "outcome": run.outcome if run else None,
                "error": run.error if run else None,
                "newest": newest,
            }
        )
    return out


def error_count(link: Link, days: int = 30) -> int:
    """Failures of the last ``days`` days: refreshes, syncs and webhooks (one query)."""
    since = utcnow() - timedelta(days=days)
    failed_events = select(func.count(LinkEvent.id)).where(
        LinkEvent.link_id == link.id,
        LinkEvent.at >= since,
        or_(LinkEvent.kind.like("%failed"), LinkEvent.kind == "link_error"),
    )
    failed_runs = select(func.count(SyncRun.id)).where(
        SyncRun.link_id == link.id, SyncRun.finished_at >= since, SyncRun.outcome == "error"
    )
    failed_hooks = select(func.count(WebhookEvent.id)).where(
        WebhookEvent.link_id == link.id,
        WebhookEvent.received_at >= since,
        WebhookEvent.status == "failed",
    )
    return db.session.scalar(
        select(
            failed_events.scalar_subquery()
            + failed_runs.scalar_subquery()
            + failed_hooks.scalar_subquery()
        )
    )


def last_webhook(link: Link) -> WebhookEvent | None:
    """The newest webhook for this link (read backwards from ix_webhook_events_link_received)."""
    return db.session.scalar(
        select(WebhookEvent)
        .where(WebhookEvent.link_id == link.id)
        .order_by(WebhookEvent.received_at.desc(), WebhookEvent.id.desc())
        .limit(1)
    )


def series(link: Link, name: str, days: int = 30) -> list[tuple[datetime, float]]:
    """(start, value) points of one indicator over the last ``days`` days, oldest first."""
    since = utcnow() - timedelta(days=days)
    rows = db.session.execute(
        select(Indicator.start, Indicator.value)
        .where(
            Indicator.link_id == link.id,
            Indicator.name == name,
            Indicator.start >= since,
            Indicator.value.is_not(None),
        )
        .order_by(Indicator.start)
    ).all()
    return [(start, value) for start, value in rows]


def raw_records(link: Link, limit: int = 20) -> list[WhoopRecord]:
    """The newest raw WHOOP objects, for support to read."""
    return list(
        db.session.scalars(
            select(WhoopRecord)
            .where(WhoopRecord.link_id == link.id)
            .order_by(WhoopRecord.start.desc().nulls_last(), WhoopRecord.id.desc())
            .limit(limit)
        )
    )


# --------------------------------------------------------------------------- actions


class ActionRefused(Exception):
    """A staff action that cannot do anything for this link now; the message says why."""


def sync_refusal(link: Link) -> str | None:
    """Why re-sync and token refresh cannot work for this link now, or None if they can."""
    if link.status == "revoked":
        return (
            "This link is disconnected: it has no tokens to sync or refresh with. "
            "Create a reconnect link and send it to the member."
        )
    if link.status == "reauth_required":
        return (
            "WHOOP no longer accepts this link's refresh token, so nothing can be synced "
            "or refreshed until the member reconnects. Create a reconnect link and send "
            "it to the member."
        )
    return None


def resync(actor, link: Link, days: int = 30) -> None:
    """Queue a re-sync of the last ``days`` days (ActionRefused if the link cannot sync)."""
    from whoopadmin.sync.jobs import queue_resync

    if refusal := sync_refusal(link):
        raise ActionRefused(refusal)

    end = utcnow()
    queue_resync(link.id, end - timedelta(days=days), end, job_id=f"resync-{link.id}")
    audit.record(actor, "link.resync", link, days=days)
    db.session.commit()


def refresh_now(actor, link: Link) -> None:
    """Queue a token refresh now, whatever the expiry (ActionRefused if it cannot work)."""
    from whoopadmin.jobs import enqueue_once

    if refusal := sync_refusal(link):
        raise ActionRefused(refusal)

    enqueue_once(
        "refresh",
        "whoopadmin.sync.jobs.refresh_link",
        link.id,
        "support",
        force=True,
        job_id=f"refresh-now-{link.id}",
    )
    audit.record(actor, "link.refresh_now", link)
    db.session.commit()


def reconnect_link(actor, link: Link) -> str:
    """A new connect link for the same member (reference id and WHOOP account); its URL."""
    connection = db.session.get(Connection, link.connection_id)
    session, token = connect_service.create_session(
        connection,
        reference_id=link.reference_id,
        expires_in=24 * 3600,
        created_by=actor,
        target_link=link,  # only this link's WHOOP member may use it
    )
    audit.record(actor, "link.reconnect_link", link, session=session.public_id)
    db.session.commit()
    return connect_service.connect_url(connection, token)
