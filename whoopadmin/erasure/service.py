"""Erasure: request (with a grace period), undo, and carrying it out. No Flask views.

A request puts the link in status ``erasing``: from then on nothing is synced (sync,
refresh and webhook processing only act on ``active``/``error`` links) and nothing is
delivered for it (``emit`` creates no delivery for an erasing link; a pending delivery
waits). After the grace period (``DataPolicy.erasure_grace_days``, default 7; 0 = at
once) the cron job ``erase_due`` carries it out:

1. revoke the app's access at WHOOP (with the access token, refreshed first if expired);
2. delete the link's raw WHOOP objects, indicators, sync runs, webhook events (by link and
   by WHOOP user id), deliveries (by link, and those that name the user in their payload),
   timeline, connect sessions and their OAuth states, any other row that points at the
   link, and finally the link itself with its sealed tokens and personal data;
3. redact the audit rows about the link (their details may name the user);
4. write the receipt: the audit row ``link.erased`` and the ``user.erased`` event.

The receipt names the user only by ``user_hash`` = SHA-256 of the public user id (hex)
and by the erasure's own id: never the user id, the reference id or the WHOOP user id,
so nothing left in the database can be traced back to the person.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import delete, or_, select, update

from whoopadmin import audit
from whoopadmin.audit import AuditEvent, utcnow
from whoopadmin.connect.models import ConnectSession, Link, LinkEvent, OAuthState
from whoopadmin.destinations.models import Delivery
from whoopadmin.erasure.models import Erasure
from whoopadmin.extensions import db
from whoopadmin.retention.models import DEFAULT_GRACE_DAYS, MAX_GRACE_DAYS, DataPolicy
from whoopadmin.sync.models import Indicator, SyncRun, WhoopRecord
from whoopadmin.webhooks.models import WebhookEvent

log = logging.getLogger(__name__)

ERASING = "erasing"
# The kinds a receipt counts, in this order (other tables pointing at links add theirs).
COUNTED = (
    "raw_objects",
    "indicators",
    "sync_runs",
    "webhook_events",
    "deliveries",
    "link_events",
    "connect_sessions",
    "oauth_states",
    "links",
)


class ErasureError(Exception):
    """An erasure request or undo that cannot be done; ``code`` is the API's error code."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def user_hash(uid: str) -> str:
    """SHA-256 (hex) of a public user id: what a receipt names the user by."""
    return hashlib.sha256(uid.encode()).hexdigest()


def grace_days(connection_id: int) -> int:
    """The connection's erasure grace period in days (default 7)."""
    policy = db.session.get(DataPolicy, connection_id)
    return DEFAULT_GRACE_DAYS if policy is None else policy.erasure_grace_days


def pending_for(link: Link) -> Erasure | None:
    """The link's scheduled (or running) erasure, if any."""
    return db.session.scalar(
        select(Erasure).where(
            Erasure.link_id == link.id, Erasure.status.in_(("scheduled", "running"))
        )
    )


def latest_for(link: Link) -> Erasure | None:
    """The link's most recent erasure request (any status), if any."""
    return db.session.scalar(
        select(Erasure).where(Erasure.link_id == link.id).order_by(Erasure.id.desc()).limit(1)
    )


def erased_receipt(uid: str, connection_filter=None) -> Erasure | None:
    """The receipt of a carried-out erasure of the user with this public id, if any."""
    query = select(Erasure).where(Erasure.user_hash == user_hash(uid), Erasure.status == "done")
    if connection_filter is not None:
        query = query.where(connection_filter(Erasure.connection_id))
    return db.session.scalar(query.order_by(Erasure.id.desc()).limit(1))


def request_erasure(actor, link: Link, grace: int | None = None) -> Erasure:
    """Schedule the erasure of ``link`` (after ``grace`` days, default the connection's).

    With a grace of 0 it is carried out at once. ErasureError ``erasure_pending`` when one
    is already scheduled.
    """
    if grace is None:
        grace = grace_days(link.connection_id)
    if not 0 <= grace <= MAX_GRACE_DAYS:
        raise ErasureError(f"The grace period must be 0 to {MAX_GRACE_DAYS} days.", "invalid")
    if link.status == ERASING or pending_for(link) is not None:
        raise ErasureError("This user's erasure is already scheduled.", "erasure_pending")
    now = utcnow()
    erasure = Erasure(
        public_id=f"era_{secrets.token_hex(12)}",
        connection_id=link.connection_id,
        link_id=link.id,
        user_hash=user_hash(link.uid),
        status="scheduled",
        previous_status=link.status,
        previous_reason=link.status_reason,
        requested_by=audit.actor_label(actor),
        requested_at=now,
        due_at=now + timedelta(days=grace),
        counts={},
    )
    db.session.add(erasure)
    link.status = ERASING
    link.status_reason = (
        f"erasure requested by {erasure.requested_by}; takes effect "
        f"{erasure.due_at:%Y-%m-%d %H:%M} UTC"
    )[:500]
    db.session.flush()
    db.session.add(
        LinkEvent(
            connection_id=link.connection_id,
            link_id=link.id,
            kind="erasure_requested",
            details={"erasure": erasure.public_id, "due_at": erasure.due_at.isoformat()},
        )
    )
    audit.record(
        actor,
        "link.erasure_request",
        link,
        erasure=erasure.public_id,
        grace_days=grace,
        due_at=erasure.due_at.isoformat(),
    )
    db.session.commit()
    if grace == 0:
        execute(erasure.id)
        db.session.refresh(erasure)
    return erasure


def cancel(actor, erasure: Erasure) -> Erasure:
    """Undo a scheduled erasure: the link gets its previous status back.

    ErasureError ``erasure_done`` (already carried out) or ``not_scheduled`` (cancelled,
    or being carried out right now).
    """
    if erasure.status == "done":
        raise ErasureError("This user was already erased; it cannot be undone.", "erasure_done")
    now = utcnow()
    claimed = db.session.execute(
        update(Erasure)
        .where(Erasure.id == erasure.id, Erasure.status == "scheduled")
        .values(status="cancelled", cancelled_by=audit.actor_label(actor), cancelled_at=now)
    ).rowcount
    if not claimed:
        db.session.rollback()
        raise ErasureError("No erasure of this user is scheduled.", "not_scheduled")
    link = db.session.get(Link, erasure.link_id)
    if link is not None and link.status == ERASING:
        link.status = erasure.previous_status or "active"
        link.status_reason = erasure.previous_reason
        db.session.add(
            LinkEvent(
                connection_id=link.connection_id,
                link_id=link.id,
                kind="erasure_cancelled",
                details={"erasure": erasure.public_id},
            )
        )
    audit.record(actor, "link.erasure_cancel", link, erasure=erasure.public_id)
    db.session.commit()
    db.session.refresh(erasure)
    return erasure


# --------------------------------------------------------------------------- carrying out


def erase_due(now: datetime | None = None, limit: int = 50) -> int:
    """Carry out every erasure whose grace period is over (cron: every 5 minutes)."""
    now = now or utcnow()
    ids = db.session.scalars(
        select(Erasure.id)
        .where(Erasure.status == "scheduled", Erasure.due_at <= now)
        .order_by(Erasure.due_at)
        .limit(limit)
    ).all()
    done = 0
    for erasure_id in ids:
        try:
            done += bool(execute(erasure_id))
        except Exception:
            db.session.rollback()
            log.exception("erasure %s failed; the next run tries again", erasure_id)
            db.session.execute(
                update(Erasure)
                .where(Erasure.id == erasure_id, Erasure.status == "running")
                .values(status="scheduled")
            )
            db.session.commit()
    return done


def execute(erasure_id: int) -> dict[str, int] | None:
    """Carry out one scheduled erasure now; return the rows removed per kind.

    None if it is not scheduled (cancelled meanwhile, or another worker took it).
    """
    claimed = db.session.execute(
        update(Erasure)
        .where(Erasure.id == erasure_id, Erasure.status == "scheduled")
        .values(status="running")
    ).rowcount
    db.session.commit()
    if not claimed:
        return None
    erasure = db.session.get(Erasure, erasure_id, populate_existing=True)
    link = db.session.get(Link, erasure.link_id) if erasure.link_id else None
    counts = {kind: 0 for kind in COUNTED}
    revoke = "no_link"
    if link is not None:
        revoke = _revoke(link)
        counts = _delete_everything(link, erasure)
    now = utcnow()
    erasure.status = "done"
    erasure.done_at = now
    erasure.counts = counts
    erasure.whoop_revoke = revoke
    erasure.previous_status = None
    erasure.previous_reason = None
    receipt = receipt_of(erasure)
    audit.record(erasure.requested_by, "link.erased", erasure, **receipt)
    db.session.commit()
    from whoopadmin.destinations.service import emit

    emit(erasure.connection_id, "user.erased", receipt)
    return counts


def receipt_of(erasure: Erasure) -> dict:
    """The deletion receipt: what was removed, how many rows, when, by whom (no user ids)."""
    return {
        "provider": "whoop",
        "erasure_id": erasure.public_id,
        "user_hash": erasure.user_hash,
        "requested_by": erasure.requested_by,
        "requested_at": erasure.requested_at.isoformat(),
        "erased_at": erasure.done_at.isoformat() if erasure.done_at else None,
        "whoop_revoke": erasure.whoop_revoke,
        "counts": dict(erasure.counts or {}),
    }


def _revoke(link: Link) -> str:
    """Revoke at WHOOP; return ``revoked``, ``no_tokens`` or WHOOP's error code."""
    from whoopadmin.connect.service import _revoke_at_whoop

    token = _access_token(link)
    if not token:
        return "no_tokens"
    try:
        error = _revoke_at_whoop(link.connection_id, token)
    except Exception as exc:  # the network: the data goes anyway
        return f"failed: {type(exc).__name__}"[:64]
    return "revoked" if error is None else str(error)[:64]


def _access_token(link: Link) -> str | None:
    """A usable access token: the stored one, or a fresh one if it has expired.

    The link was not refreshed during the grace period (nothing runs for it); its refresh
    token is used once here, and both are deleted with the link right after.
    """
    from whoopadmin.connect.service import oauth_client
    from whoopadmin.setup.models import Connection
    from whoopadmin.sync.tokens import requested_scope

    token = link.access_token
    if (
        token
        and link.access_expires_at
        and link.access_expires_at > utcnow() + timedelta(seconds=60)
    ):
        return token
    if not link.refresh_token:
        return token
    connection = db.session.get(Connection, link.connection_id)
    try:
        with oauth_client(connection) as client:
            fresh = client.refresh_token(
                current_app.config["WHOOP_TOKEN_URL"],
                refresh_token=link.refresh_token,
                scope=requested_scope(link),
                timeout=float(current_app.config["WHOOP_TIMEOUT"]),
            )
        return fresh.get("access_token") or token
    except Exception as exc:
        log.warning("erasure: refreshing link %s failed: %s", link.id, type(exc).__name__)
        return token


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere (wildcards escaped with ``\\``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _naming(column, needles: list[str]):
    """A WHERE clause: the text of ``column`` contains one of ``needles``."""
    text = sa.cast(column, sa.Text)
    return or_(*(text.like(_like(n), escape="\\") for n in needles))


def needles_for(link: Link) -> list[str]:
    """The texts that identify the user inside JSON documents (payloads, details)."""
    ref = json.dumps(link.reference_id)
    found = [link.uid]
    for sep in (":", ": "):
        found.append(f'"reference_id"{sep}{ref}')
        # A number needs its end too: 12 must not match 123.
        for name in ("whoop_user_id", "user_id"):
            found += [f'"{name}"{sep}{link.whoop_user_id}{end}' for end in (",", "}")]
    return found


def _delete_everything(link: Link, erasure: Erasure) -> dict[str, int]:
    """Delete every row of the link (see the module's docstring); return counts per kind."""
    s = db.session
    link_id, connection_id = link.id, link.connection_id
    needles = needles_for(link)
    counts: dict[str, int] = {}

    def run(statement) -> int:
        return s.execute(statement.execution_options(synchronize_session=False)).rowcount or 0

    # Connect sessions of this link, and unused ones for its reference id when no other
    # link on the connection has that reference id.
    sessions = select(ConnectSession.id).where(
        or_(ConnectSession.link_id == link_id, ConnectSession.target_link_id == link_id)
    )
    shared = s.scalar(
        select(sa.func.count(Link.id)).where(
            Link.connection_id == connection_id,
            Link.reference_id == link.reference_id,
            Link.id != link_id,
        )
    )
    session_ids = set(s.scalars(sessions))
    if not shared:
        session_ids |= set(
            s.scalars(
                select(ConnectSession.id).where(
                    ConnectSession.connection_id == connection_id,
                    ConnectSession.reference_id == link.reference_id,
                    ConnectSession.link_id.is_(None),
                )
            )
        )
    session_ids = sorted(session_ids)

    counts["raw_objects"] = run(delete(WhoopRecord).where(WhoopRecord.link_id == link_id))
    counts["indicators"] = run(delete(Indicator).where(Indicator.link_id == link_id))
    counts["sync_runs"] = run(delete(SyncRun).where(SyncRun.link_id == link_id))
    counts["webhook_events"] = run(
        delete(WebhookEvent).where(
            or_(
                WebhookEvent.link_id == link_id,
                sa.and_(
                    WebhookEvent.connection_id == connection_id,
                    WebhookEvent.whoop_user_id == link.whoop_user_id,
                ),
            )
        )
    )
    doomed = select(Delivery.id).where(
        or_(
            Delivery.link_id == link_id,
            sa.and_(Delivery.connection_id == connection_id, _naming(Delivery.payload, needles)),
        )
    )
    doomed_ids = list(s.scalars(doomed))
    for chunk in _chunks(doomed_ids):
        run(update(Delivery).where(Delivery.resend_of_id.in_(chunk)).values(resend_of_id=None))
    counts["deliveries"] = sum(
        run(delete(Delivery).where(Delivery.id.in_(chunk))) for chunk in _chunks(doomed_ids)
    )
    events = [LinkEvent.link_id == link_id]
    if session_ids:
        events.append(LinkEvent.session_id.in_(session_ids))
    counts["link_events"] = run(delete(LinkEvent).where(or_(*events)))
    counts["oauth_states"] = 0
    counts["connect_sessions"] = 0
    for chunk in _chunks(session_ids):
        counts["oauth_states"] += run(delete(OAuthState).where(OAuthState.session_id.in_(chunk)))
        gone = run(delete(ConnectSession).where(ConnectSession.id.in_(chunk)))
        counts["connect_sessions"] += gone
    # Any other table that points at links (added by later features) loses its rows too.
    counts.update(_other_rows(link_id))
    _redact_audit(link, needles)
    erasure.link_id = None
    s.flush()
    # Earlier (cancelled) requests for the link keep only their hash, like this receipt.
    run(
        update(Erasure)
        .where(Erasure.link_id == link_id)
        .values(link_id=None, previous_status=None, previous_reason=None)
    )
    counts["links"] = run(delete(Link).where(Link.id == link_id))
    return {kind: counts.get(kind, 0) for kind in COUNTED} | {
        k: v for k, v in counts.items() if k not in COUNTED
    }


HANDLED = {
    "whoop_records",
    "indicators",
    "sync_runs",
    "webhook_events",
    "deliveries",
    "link_events",
    "connect_sessions",
    "erasures",
}


def _other_rows(link_id: int) -> dict[str, int]:
    """Delete rows of tables not handled above whose foreign key names this link."""
    counts = {}
    for table in reversed(db.metadata.sorted_tables):
        if table.name in HANDLED or table.name == "links":
            continue
        for column in table.columns:
            if any(fk.column.table.name == "links" for fk in column.foreign_keys):
                removed = db.session.execute(delete(table).where(column == link_id)).rowcount
                if removed:
                    counts[table.name] = counts.get(table.name, 0) + removed
    return counts


def _redact_audit(link: Link, needles: list[str]) -> int:
    """Redact the details of audit rows about the link or that name the user."""
    rows = db.session.scalars(
        select(AuditEvent).where(
            or_(
                sa.and_(AuditEvent.target_type == "links", AuditEvent.target_id == str(link.id)),
                _naming(AuditEvent.details, needles),
            )
        )
    ).all()
    identifiers = {link.uid, link.reference_id, str(link.whoop_user_id)}
    for row in rows:
        details = dict(row.details or {})
        for key, value in list(details.items()):
            text = json.dumps(value, default=str)
            if any(i and i in text for i in identifiers) or key in ("reference_id", "session"):
                details[key] = "[erased]"
        row.details = details
    return len(rows)


def _chunks(ids: list[int], size: int = 500):
    for start in range(0, len(ids), size):
        yield ids[start : start + size]
