"""Following a backfill: queued, running (with progress), completed or failed.

The backfill job (``sync.jobs.backfill_link``) opens a ``Tracker`` with ``start``; the
sync reports each stored page to it (``page``), so the status API and the support page
can show how far back it has got. When the job ends, ``complete`` delivers
``historical.completed`` with the records stored per type; when it gives up (the link
cannot be synced, or the last retry failed) ``fail`` delivers ``historical.failed`` with
the reason.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select

from whoopadmin.audit import utcnow
from whoopadmin.connect.models import Link
from whoopadmin.data.models import Backfill
from whoopadmin.extensions import db

log = logging.getLogger(__name__)

PROVIDER = "whoop"
# The order a backfill walks the data types in (sync.service._sync_window), stored names.
STEPS = ("body_measurement", "cycle", "sleep", "recovery", "workout")
# Stored record types → the API's (and the data events') names.
API_TYPE = {
    "body_measurement": "body",
    "cycle": "cycle",
    "sleep": "sleep",
    "recovery": "recovery",
    "workout": "workout",
}
OPEN = ("queued", "running")


def queued(link_id: int, trigger: str, start: datetime, end: datetime) -> Backfill:
    """Record a backfill about to be queued (committed).

    One job per link waits at a time (the job id): asking again while one waits moves
    that one's window rather than adding a row that would never run.
    """
    row = db.session.scalar(
        select(Backfill)
        .where(Backfill.link_id == link_id, Backfill.status == "queued")
        .order_by(Backfill.id.desc())
        .limit(1)
    )
    if row is None:
        row = Backfill(link_id=link_id, status="queued", counts={})
        db.session.add(row)
    row.trigger, row.window_start, row.window_end = trigger, start, end
    row.queued_at = utcnow()
    db.session.commit()
    return row


def current(link_id: int) -> Backfill | None:
    """The link's newest backfill (open or finished), if it ever had one."""
    return db.session.scalar(
        select(Backfill).where(Backfill.link_id == link_id).order_by(Backfill.id.desc()).limit(1)
    )


def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a ``Z``, or None."""
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def as_json(row: Backfill | None) -> dict | None:
    """A backfill as the status API shows it."""
    if row is None:
        return None
    return {
        "id": row.id,
        "status": row.status,
        "trigger": row.trigger,
        "window": {"start": iso(row.window_start), "end": iso(row.window_end)},
        "progress": round(float(row.progress or 0.0), 4),
        "current_type": API_TYPE.get(row.current_type) if row.current_type else None,
        "counts": {API_TYPE[s]: int((row.counts or {}).get(API_TYPE[s], 0)) for s in STEPS},
        "attempts": row.attempts or 0,
        "error": row.error,
        "queued_at": iso(row.queued_at),
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
    }


class Tracker:
    """The progress of one running backfill, written as the sync goes."""

    def __init__(self, row: Backfill) -> None:
        self.row_id = row.id
        self.start, self.end = row.window_start, row.window_end
        self.counts: dict[str, int] = {}
        self.step = 0

    def _row(self) -> Backfill:
        return db.session.get(Backfill, self.row_id)

    def _write(self, current_type: str | None, within: float) -> None:
        row = self._row()
        row.progress = min(1.0, (self.step + max(0.0, min(1.0, within))) / len(STEPS))
        row.current_type = current_type
        row.counts = dict(self.counts)
        db.session.commit()

    def begin_type(self, type_: str) -> None:
        """The sync starts on ``type_`` (stored name)."""
        if type_ in STEPS:
            self.step = STEPS.index(type_)
        self.counts.setdefault(API_TYPE.get(type_, type_), 0)
        self._write(type_, 0.0)

    def page(self, type_: str, records: list[dict], stored: int) -> None:
        """One page of ``type_`` stored: ``stored`` records; pages run newest first."""
        name = API_TYPE.get(type_, type_)
        self.counts[name] = self.counts.get(name, 0) + stored
        within = 0.0
        from whoopadmin.whoop.normalise import parse_timestamp

        starts = [parse_timestamp(r.get("start") or r.get("created_at")) for r in records]
        starts = [s for s in starts if s is not None]
        span = (self.end - self.start).total_seconds()
        if starts and span > 0:
            within = (self.end - min(starts)).total_seconds() / span
        self._write(type_, within)

    def end_type(self, type_: str, stored: int | None = None) -> None:
        """``type_`` is done (``stored``: its count when no page reported it)."""
        name = API_TYPE.get(type_, type_)
        if stored is not None:
            self.counts[name] = stored
        self.step = STEPS.index(type_) + 1 if type_ in STEPS else self.step
        self._write(type_, 0.0)


def start(link_id: int, trigger: str, window_start: datetime, window_end: datetime) -> Tracker:
    """The running backfill of this link: its open row (a retry continues it), or a new one."""
    row = db.session.scalar(
        select(Backfill)
        .where(Backfill.link_id == link_id, Backfill.status.in_(OPEN))
        .order_by(Backfill.id.desc())
        .limit(1)
    )
    if row is None:
        row = Backfill(link_id=link_id, trigger=trigger, counts={})
        db.session.add(row)
    row.status = "running"
    row.window_start, row.window_end = window_start, window_end
    row.attempts = (row.attempts or 0) + 1
    row.started_at = row.started_at or utcnow()
    row.progress, row.current_type, row.counts = 0.0, None, {}
    db.session.commit()
    return Tracker(row)


def _event_data(row: Backfill) -> dict:
    data = as_json(row)
    return {
        "provider": PROVIDER,
        "backfill_id": data["id"],
        "trigger": data["trigger"],
        "window": data["window"],
        "counts": data["counts"],
        "started_at": data["started_at"],
        "finished_at": data["finished_at"],
    }


def complete(tracker: Tracker) -> None:
    """The backfill finished: record it and deliver ``historical.completed``."""
    from whoopadmin.destinations.service import emit

    db.session.rollback()  # whatever the sync left half-done is not ours to commit
    row = tracker._row()
    row.status, row.progress, row.current_type = "completed", 1.0, None
    row.counts, row.error, row.finished_at = dict(tracker.counts), None, utcnow()
    db.session.commit()
    link = db.session.get(Link, row.link_id)
    emit(link.connection_id, "historical.completed", _event_data(row), link=link)


def retrying(tracker: Tracker, reason: str) -> None:
    """A try failed and the job will be retried: keep the reason where status shows it."""
    db.session.rollback()
    row = tracker._row()
    row.error = reason[:255]
    db.session.commit()


def fail(tracker: Tracker | None, link_id: int, reason: str, message: str) -> None:
    """The backfill gave up: record why and deliver ``historical.failed``.

    ``tracker`` None: it failed before it started (the link could not be synced); the
    open row, if one was queued, is the one that failed.
    """
    from whoopadmin.destinations.service import emit

    db.session.rollback()
    if tracker is not None:
        row = tracker._row()
    else:
        row = db.session.scalar(
            select(Backfill)
            .where(Backfill.link_id == link_id, Backfill.status.in_(OPEN))
            .order_by(Backfill.id.desc())
            .limit(1)
        )
    link = db.session.get(Link, link_id)
    if row is None:
        if link is None:
            return
        now = utcnow()
        row = Backfill(
            link_id=link_id, trigger="connect", window_start=now, window_end=now, counts={}
        )
        db.session.add(row)
    if tracker is not None:
        row.counts = dict(tracker.counts)
    row.status, row.current_type, row.finished_at = "failed", None, utcnow()
    row.error = f"{reason}: {message}"[:255]
    db.session.commit()
    if link is None:
        return
    data = {**_event_data(row), "reason": reason, "message": message[:255]}
    emit(link.connection_id, "historical.failed", data, link=link)
