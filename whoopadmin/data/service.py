"""Reading what is stored for one user: record pages, daily summaries, the sync status.

Plain functions on a ``Link``; the views (``views.py``) check keys and input. Records
carry the same ids, indicator names and units as the data events (they are built by
``destinations.service.record_data``, as the deliveries are), and ``provider``.

Pages are keyset pages over ``(start, id)`` (``ix_whoop_records_link_type_start_id``),
oldest first: a record stored while a client pages lands after the ones it has seen (or
behind its position if it is older), so no record is repeated and none that existed
when the first page was read is skipped. The cursor is signed and bound to the query
(user, type, window): a changed, forged or foreign cursor is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, select, tuple_, union_all

from whoopadmin.connect.models import Link
from whoopadmin.data import backfills
from whoopadmin.data.models import Backfill
from whoopadmin.destinations.service import record_data
from whoopadmin.extensions import db
from whoopadmin.sync.models import SyncRun, WhoopRecord
from whoopadmin.webhooks.models import WebhookEvent
from whoopadmin.whoop import normalise as norm

PROVIDER = backfills.PROVIDER
# The API's data types → the stored record types.
TYPES = {
    "sleep": "sleep",
    "recovery": "recovery",
    "cycle": "cycle",
    "workout": "workout",
    "body": "body_measurement",
}
FORMATS = ("normalised", "raw", "both")
DEFAULT_LIMIT, MAX_LIMIT = 100, 500
MAX_WINDOW_DAYS = 366
DEFAULT_WINDOW_DAYS = 30
CURSOR_MAX = 512


class DataError(ValueError):
    """Input the data API refuses (400); ``field`` names it, ``code`` is the error code."""

    def __init__(self, message: str, field: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.field, self.code = field, code


def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a ``Z`` (None stays None)."""
    return backfills.iso(value)


# --------------------------------------------------------------------------- windows


def window(
    start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """``[start, end)``: defaults end now, start 30 days before; DataError if not a window."""
    end = end or now
    start = start or end - timedelta(days=DEFAULT_WINDOW_DAYS)
    if start >= end:
        raise DataError("start must be before end.", "start", "invalid_window")
    if end - start > timedelta(days=MAX_WINDOW_DAYS):
        raise DataError(f"At most {MAX_WINDOW_DAYS} days at once.", "start", "invalid_window")
    return start, end


def day_window(start: date | None, end: date | None, today: date) -> tuple[date, date]:
    """Days ``start`` to ``end`` inclusive (default: the last 30 days up to today)."""
    end = end or today
    start = start or end - timedelta(days=DEFAULT_WINDOW_DAYS - 1)
    if start > end:
        raise DataError("start must not be after end.", "start", "invalid_window")
    if (end - start).days + 1 > MAX_WINDOW_DAYS:
        raise DataError(f"At most {MAX_WINDOW_DAYS} days at once.", "start", "invalid_window")
    return start, end


# --------------------------------------------------------------------------- cursors


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="whoopadmin.data-cursor")


def _query_key(link: Link, data_type: str, start: datetime, end: datetime) -> str:
    return f"{link.uid}|{data_type}|{start.isoformat()}|{end.isoformat()}"


def encode_cursor(key: str, record: WhoopRecord) -> str:
    """The opaque cursor after ``record``, bound to the query ``key``."""
    at = record.start.isoformat() if record.start is not None else None
    return _serializer().dumps([key, at, record.id])


def decode_cursor(cursor: str, key: str) -> tuple[datetime | None, int]:
    """The (start, id) a cursor continues after; DataError unless we made it for ``key``."""
    bad = DataError(
        "cursor is not one this API gave for this query (same user, type, start and end).",
        "cursor",
        "invalid_cursor",
    )
    if not cursor or len(cursor) > CURSOR_MAX or not cursor.isascii():
        raise bad
    try:
        bound, at, record_id = _serializer().loads(cursor)
        at = datetime.fromisoformat(at) if at is not None else None
    except (BadSignature, ValueError, TypeError):
        raise bad from None
    if bound != key or not isinstance(record_id, int) or (at is not None and at.tzinfo is None):
        raise bad
    return at, record_id


# --------------------------------------------------------------------------- records


def record_json(data_type: str, row: WhoopRecord, user_id: int | None, fmt: str) -> dict:
    """One stored record as the API shows it (``fmt``: normalised, raw or both)."""
    kind = TYPES[data_type]
    try:
        shared = record_data(kind, row.raw, user_id)
    except ValueError:  # stored without a usable id: cannot happen for a stored record
        shared = {"indicators": []}
    out: dict[str, Any] = {
        "provider": PROVIDER,
        "type": data_type,
        "id": row.whoop_id,
        "start": shared.get("start"),
        "end": shared.get("end"),
        "timezone_offset": shared.get("timezone_offset"),
        "score_state": shared.get("score_state"),
        "updated_at": shared.get("updated_at"),
        "deleted": bool(row.deleted),
        "fetched_at": iso(row.fetched_at),
    }
    for name in ("start", "end", "timezone_offset", "score_state", "updated_at"):
        if not isinstance(out[name], str):
            out[name] = None
    if fmt in ("normalised", "both"):
        # A record deleted at WHOOP has no indicators any more (as in the indicators table).
        out["indicators"] = [] if row.deleted else shared["indicators"]
    if fmt in ("raw", "both"):
        out["raw"] = row.raw if isinstance(row.raw, dict) else {}
    return out


@dataclass(frozen=True)
class Page:
    """One page of records and the cursor to the next (None on the last page)."""

    records: list[dict]
    next_cursor: str | None


def records_page(
    link: Link,
    data_type: str,
    start: datetime,
    end: datetime,
    *,
    fmt: str = "normalised",
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page:
    """A page of ``link``'s records of ``data_type`` whose start is in ``[start, end)``.

    A body measurement has no start (WHOOP keeps one, the current one): it is listed
    whatever the window.
    """
    kind = TYPES[data_type]
    key = _query_key(link, data_type, start, end)
    query = select(WhoopRecord).where(WhoopRecord.link_id == link.id, WhoopRecord.type == kind)
    if kind != "body_measurement":
        query = query.where(WhoopRecord.start >= start, WhoopRecord.start < end)
    if cursor is not None:
        after_start, after_id = decode_cursor(cursor, key)
        if kind == "body_measurement" or after_start is None:
            query = query.where(WhoopRecord.id > after_id)
        else:
            query = query.where(
                tuple_(WhoopRecord.start, WhoopRecord.id) > tuple_(after_start, after_id)
            )
    query = query.order_by(WhoopRecord.start, WhoopRecord.id).limit(limit + 1)
    rows = list(db.session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    records = [record_json(data_type, row, link.whoop_user_id, fmt) for row in rows]
    return Page(records, encode_cursor(key, rows[-1]) if more else None)


# --------------------------------------------------------------------------- daily

# Daily fields → (indicator, unit); cycle, recovery and main-sleep values.
DAILY_CYCLE = {
    "strain": ("cycle_strain", "strain"),
    "energy": ("cycle_energy", "kJ"),
    "calories": ("cycle_calories", "kcal"),
    "average_heart_rate": ("cycle_average_heart_rate", "bpm"),
    "max_heart_rate": ("cycle_max_heart_rate", "bpm"),
}
DAILY_RECOVERY = {
    "recovery_score": ("recovery_score", "%"),
    "hrv_rmssd": ("hrv_rmssd", "ms"),
    "resting_heart_rate": ("resting_heart_rate", "bpm"),
    "spo2": ("spo2", "%"),
    "skin_temperature": ("skin_temperature", "°C"),
}
DAILY_SLEEP = {
    "sleep_performance": ("sleep_performance", "%"),
    "sleep_efficiency": ("sleep_efficiency", "%"),
    "sleep_consistency": ("sleep_consistency", "%"),
    "sleep_duration": ("sleep_duration", "min"),
    "sleep_asleep_time": ("sleep_asleep_time", "min"),
    "respiratory_rate": ("respiratory_rate", "breaths/min"),
}
DAILY_WORKOUT_UNITS = {
    "workout_duration": "min",
    "workout_strain_max": "strain",
    "workout_energy": "kJ",
    "workout_calories": "kcal",
}
DAILY_UNITS = {
    **{k: u for k, (_, u) in DAILY_CYCLE.items()},
    **{k: u for k, (_, u) in DAILY_RECOVERY.items()},
    **{k: u for k, (_, u) in DAILY_SLEEP.items()},
    "nap_count": "count",
    "workout_count": "count",
    **DAILY_WORKOUT_UNITS,
}


def _offset(text: Any) -> timezone:
    """A WHOOP ``timezone_offset`` (``+hh:mm``, ``-hh:mm``, ``Z``) as a timezone; UTC if not."""
    if isinstance(text, str) and len(text) == 6 and text[0] in "+-" and text[3] == ":":
        try:
            delta = timedelta(hours=int(text[1:3]), minutes=int(text[4:6]))
        except ValueError:
            return UTC
        if delta < timedelta(hours=24):
            return timezone(-delta if text[0] == "-" else delta)
    return UTC


def _local_date(moment: datetime | None, raw: dict) -> date | None:
    if moment is None:
        return None
    return moment.astimezone(_offset(raw.get("timezone_offset"))).date()


def _values(kind: str, raw: dict, user_id: int | None) -> dict[str, Any]:
    try:
        return {i.name: i.value for i in norm.normalise(kind, raw, user_id)}
    except ValueError:
        return {}


def _empty_day(day: date) -> dict[str, Any]:
    row: dict[str, Any] = {"date": day.isoformat(), "provider": PROVIDER}
    row.update({"cycle_id": None, "sleep_id": None, "recovery_id": None, "workout_ids": []})
    row.update(dict.fromkeys(DAILY_UNITS))
    row.update(nap_count=0, workout_count=0)
    return row


def daily(link: Link, first: date, last: date) -> list[dict[str, Any]]:
    """One row per day from ``first`` to ``last`` (inclusive) that has any data.

    A day is the member's local date (the record's own ``timezone_offset``). A cycle
    belongs to the day 12 hours after it began (it begins when the member falls asleep,
    so this is the day they wake into); its main sleep (``cycle_id``, not a nap) and its
    recovery (``cycle_id``) go with it; naps and workouts by the local date they started.
    """
    user_id = link.whoop_user_id
    # Local dates are at most 14 hours from UTC; a cycle's day is 12 hours after its start.
    low = datetime.combine(first, datetime.min.time(), UTC) - timedelta(days=2)
    high = datetime.combine(last, datetime.min.time(), UTC) + timedelta(days=2)
    rows = db.session.execute(
        select(WhoopRecord.type, WhoopRecord.whoop_id, WhoopRecord.start, WhoopRecord.raw)
        .where(
            WhoopRecord.link_id == link.id,
            WhoopRecord.type.in_(("cycle", "sleep", "recovery", "workout")),
            WhoopRecord.deleted.is_(False),
            WhoopRecord.start >= low,
            WhoopRecord.start < high,
        )
        .order_by(WhoopRecord.start, WhoopRecord.id)
    ).all()
    days: dict[date, dict[str, Any]] = {}
    cycle_day: dict[str, date] = {}

    def day_row(day: date) -> dict[str, Any]:
        if day not in days:
            days[day] = _empty_day(day)
        return days[day]

    by_type: dict[str, list] = {"cycle": [], "sleep": [], "recovery": [], "workout": []}
    for row in rows:
        if isinstance(row.raw, dict):
            by_type[row.type].append(row)
    for row in by_type["cycle"]:
        day = _local_date(row.start + timedelta(hours=12), row.raw)
        cycle_day[row.whoop_id] = day
        out = day_row(day)
        out["cycle_id"] = row.whoop_id
        values = _values("cycle", row.raw, user_id)
        for field, (name, _) in DAILY_CYCLE.items():
            out[field] = values.get(name)
    for row in by_type["sleep"]:
        values = _values("sleep", row.raw, user_id)
        ended = norm.parse_timestamp(row.raw.get("end")) or row.start
        if values.get("sleep_nap") is True:
            day_row(_local_date(ended, row.raw))["nap_count"] += 1
            continue
        cycle = str(row.raw.get("cycle_id")) if row.raw.get("cycle_id") is not None else None
        # Without its cycle stored, a main sleep goes by the local date it ended.
        out = day_row(cycle_day[cycle] if cycle in cycle_day else _local_date(ended, row.raw))
        # The longest non-nap sleep of the day is its main sleep.
        if out["sleep_id"] is not None and (out["sleep_duration"] or 0) >= (
            values.get("sleep_duration") or 0
        ):
            continue
        out["sleep_id"] = row.whoop_id
        for field, (name, _) in DAILY_SLEEP.items():
            out[field] = values.get(name)
    for row in by_type["recovery"]:
        cycle = str(row.raw.get("cycle_id")) if row.raw.get("cycle_id") is not None else None
        if cycle not in cycle_day:
            continue
        out = day_row(cycle_day[cycle])
        out["recovery_id"] = row.whoop_id
        values = _values("recovery", row.raw, user_id)
        for field, (name, _) in DAILY_RECOVERY.items():
            out[field] = values.get(name)
    for row in by_type["workout"]:
        out = day_row(_local_date(row.start, row.raw))
        values = _values("workout", row.raw, user_id)
        out["workout_ids"].append(row.whoop_id)
        out["workout_count"] += 1
        for field, name in (
            ("workout_duration", "workout_duration"),
            ("workout_energy", "workout_energy"),
            ("workout_calories", "workout_calories"),
        ):
            if values.get(name) is not None:
                out[field] = (out[field] or 0) + values[name]
        strain = values.get("workout_strain")
        if strain is not None:
            out["workout_strain_max"] = max(out["workout_strain_max"] or 0, strain)
    result = []
    for day in sorted(days):
        if first <= day <= last:
            result.append(days[day])
    return result


# --------------------------------------------------------------------------- status


def _newest_runs(link: Link):
    """The id of the newest good and the newest failed run of each type: one query, one
    short index read (``ix_sync_runs_link_type_at``) per type and outcome."""
    return union_all(
        *(
            select(
                select(SyncRun.id)
                .where(SyncRun.link_id == link.id, SyncRun.type == kind, SyncRun.outcome == outcome)
                .order_by(SyncRun.finished_at.desc(), SyncRun.id.desc())
                .limit(1)
                .subquery()
                .c.id
            )
            for kind in TYPES.values()
            for outcome in ("ok", "error")
        )
    )


def status(link: Link) -> dict[str, Any]:
    """Per data type: records, the newest one, the last good sync and the last error; the
    last webhook; the newest backfill with its window and progress."""
    stored = {
        kind: (count, newest)
        for kind, count, newest in db.session.execute(
            select(WhoopRecord.type, func.count(), func.max(WhoopRecord.start))
            .where(WhoopRecord.link_id == link.id, WhoopRecord.deleted.is_(False))
            .group_by(WhoopRecord.type)
        ).all()
    }
    ok, failed = {}, {}
    for run in db.session.scalars(select(SyncRun).where(SyncRun.id.in_(_newest_runs(link)))):
        (ok if run.outcome == "ok" else failed)[run.type] = run
    types = []
    for data_type, kind in TYPES.items():
        count, newest = stored.get(kind, (0, None))
        good, bad = ok.get(kind), failed.get(kind)
        types.append(
            {
                "type": data_type,
                "records": count,
                "newest_record_start": iso(newest),
                "last_successful_sync": (
                    {"at": iso(good.finished_at), "reason": good.reason, "records": good.records}
                    if good
                    else None
                ),
                "last_error": (
                    {"at": iso(bad.finished_at), "reason": bad.reason, "error": bad.error or ""}
                    if bad
                    else None
                ),
            }
        )
    hook = db.session.scalar(
        select(WebhookEvent)
        .where(WebhookEvent.link_id == link.id)
        .order_by(WebhookEvent.received_at.desc(), WebhookEvent.id.desc())
        .limit(1)
    )
    return {
        "provider": PROVIDER,
        "user_id": link.uid,
        "status": link.status,
        "types": types,
        "last_webhook": (
            {
                "received_at": iso(hook.received_at),
                "type": hook.type,
                "status": hook.status,
                "processed_at": iso(hook.processed_at),
            }
            if hook
            else None
        ),
        "backfill": backfills.as_json(backfills.current(link.id)),
    }


def running_backfill(link: Link) -> Backfill | None:
    """The link's backfill while it is queued or running (for the support page)."""
    row = backfills.current(link.id)
    return row if row is not None and row.status in backfills.OPEN else None
