"""Connection health as data: each signal's state and next step, for every reader.

``signals(connection)`` is what the dashboard panel, the health page, ``/metrics`` and
the cron pass all read. ``evaluate(connection)`` (the cron pass, ``health.jobs``) also
learns the webhook rate, records each signal's state and delivers a
``connection_warning`` event on every change of state — once per transition, however
often it runs.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from whoopadmin.audit import utcnow
from whoopadmin.connect.models import Link
from whoopadmin.destinations.service import emit
from whoopadmin.extensions import db
from whoopadmin.health import budget as budget_forecast
from whoopadmin.health import calls, member_cap
from whoopadmin.health import webhooks as silent
from whoopadmin.health.models import SIGNAL_STATES, ConnectionSignal, MissedWebhookCount
from whoopadmin.setup.models import Connection

log = logging.getLogger(__name__)

EVENT = "connection_warning"
# Signals whose state is recorded (and whose changes are delivered) are the first three
# of the panel: webhooks_silent, rate_budget, member_cap.


@dataclass
class Signal:
    """One health signal of one connection: its state, what it means, what to do next."""

    key: str
    label: str
    state: str  # ok, warning, problem (or unknown when it cannot be read now)
    summary: str
    next_step: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The signal as JSON-ready data."""
        return asdict(self)


def worst(states) -> str:
    """The worst of several states (problem > warning > unknown > ok)."""
    order = {"ok": 0, "unknown": 1, "warning": 2, "problem": 3}
    return max(states, key=lambda s: order.get(s, 1), default="ok")


def recorded(connection: Connection) -> dict[str, ConnectionSignal]:
    """The recorded state of each signal of the connection."""
    rows = db.session.scalars(
        select(ConnectionSignal).where(ConnectionSignal.connection_id == connection.id)
    )
    return {row.signal: row for row in rows}


# --------------------------------------------------------------------------- webhooks


def missed_by_day(connection: Connection, days: int = 7, now: datetime | None = None) -> dict:
    """Missed webhooks per day (found by reconciliation), newest first, and per type."""
    since = ((now or utcnow()) - timedelta(days=days - 1)).date()
    rows = db.session.execute(
        select(MissedWebhookCount.day, MissedWebhookCount.record_type, MissedWebhookCount.count)
        .where(MissedWebhookCount.connection_id == connection.id, MissedWebhookCount.day >= since)
        .order_by(MissedWebhookCount.day.desc())
    ).all()
    out: dict = {}
    for day, type_, count in rows:
        out.setdefault(day, {})[type_] = count
    return out


def webhook_signal(
    connection: Connection, previous: ConnectionSignal | None = None, now: datetime | None = None
) -> Signal:
    """Webhooks: silent (problem), missed or refused ones (warning), else ok."""
    now = now or utcnow()
    activity = silent.activity_of(connection)
    verdict = silent.silence(connection, activity, previous, now)
    missed = missed_by_day(connection, 2, now)
    missed_today = sum(missed.get(now.date(), {}).values())
    failures = silent.signature_failures(connection, now)
    details = {
        **verdict,
        "missed_today": missed_today,
        "signature_failures": failures,
        "causes": (activity.causes if activity else None) or [],
        "causes_checked_at": (
            activity.causes_checked_at.isoformat()
            if activity and activity.causes_checked_at
            else None
        ),
    }
    if verdict["silent"]:
        hours = (verdict["silent_for"] or 0) / 3600
        summary = (
            f"No webhook for {hours:.1f} h although members are active"
            if "no_webhooks" in verdict["why"]
            else f"{verdict['missed_since_webhook']} changes arrived only by reconciliation, "
            "none by webhook"
        ) + "; reconciliation runs more often until webhooks return."
        step = (
            "Check the causes below and apply the fix of each failing one; the flag clears "
            "when the next webhook arrives."
        )
        for cause in details["causes"]:
            if cause.get("status") == "problem":
                step = cause["fix"]
                break
        return Signal(silent.SIGNAL, "Webhooks", "problem", summary, step, details)
    if failures:
        return Signal(
            silent.SIGNAL,
            "Webhooks",
            "warning",
            f"{failures} webhook{'s' if failures != 1 else ''} failed the signature check in "
            "the last day: the client secret stored here probably differs from WHOOP's.",
            "Copy the client secret from the WHOOP developer dashboard into Credentials.",
            details,
        )
    if missed_today:
        return Signal(
            silent.SIGNAL,
            "Webhooks",
            "warning",
            f"{missed_today} change{'s' if missed_today != 1 else ''} today arrived only by "
            "reconciliation (missed webhooks).",
            "Nothing to do if this stays rare: reconciliation fills the gaps. If it grows, "
            "check WHOOP's webhook settings for this app.",
            details,
        )
    rate = verdict["rate_per_hour"]
    summary = f"Webhooks arrive (about {rate:g} an hour); " if rate else ""
    summary += "no missed webhooks today."
    return Signal(silent.SIGNAL, "Webhooks", "ok", summary[0].upper() + summary[1:], None, details)


# --------------------------------------------------------------------------- rate budget


def app_members(connection: Connection) -> int:
    """Members of every connection sharing this WHOOP app (one budget serves them all)."""
    return db.session.scalar(
        select(func.count(Link.id))
        .join(Connection, Connection.id == Link.connection_id)
        .where(Connection.client_id == connection.client_id, Link.status != "revoked")
    )


def budget_signal(connection: Connection, previous: ConnectionSignal | None = None) -> Signal:
    """The rate budget: use of both windows, the forecast, and the state."""
    from whoopadmin.sync.service import budget_for

    if not connection.client_id:
        return Signal("rate_budget", "Rate budget", "ok", "No WHOOP app configured yet.")
    try:
        usage = budget_for(connection).usage()
    except Exception as exc:  # Redis down: the panel still renders
        log.warning("rate budget unreadable: %s", type(exc).__name__)
        return Signal("rate_budget", "Rate budget", "unknown", "Redis does not answer.")
    warn = float(current_app.config["HEALTH_BUDGET_WARN"])
    fc = budget_forecast.forecast(usage, app_members(connection))
    state, reasons = budget_forecast.state(fc, warn, previous.state if previous else None)
    details = {**fc, "reasons": reasons, "warn": warn}
    summary = (
        f"{fc['minute_peak']}/{fc['minute_limit']} a minute, "
        f"{fc['day_used']}/{fc['day_limit']} today"
    )
    if fc["members_supported"] is not None:
        summary += (
            f"; at {fc['per_member']:.0f} calls per member per day today's budget "
            f"supports {fc['members_supported']} members"
        )
    if fc["runs_out_in"] is not None:
        at = utcnow() + timedelta(seconds=fc["runs_out_in"])
        summary += f"; it runs out at {at:%H:%M} UTC at the current rate"
    summary += "."
    step = None
    if "paused" in reasons or "day_exhausted" in reasons:
        step = (
            "WHOOP's limit is reached: work waits for the reset. Ask WHOOP to raise the "
            "app's limits, then record them under Settings."
        )
    elif "day" in reasons or "runs_out" in reasons:
        step = (
            "Ask WHOOP to raise the app's daily limit and record it under Settings. Until "
            "then backfill and reconciliation stop short of the last "
            f"{float(current_app.config['HEALTH_BUDGET_RESERVE']):.0%} so webhook-driven "
            "fetches go on."
        )
    elif "minute" in reasons:
        step = (
            "Bursts use most of the per-minute budget: spread connects and re-syncs out, or "
            "ask WHOOP for a higher limit and record it under Settings."
        )
    return Signal("rate_budget", "Rate budget", state, summary, step, details)


# --------------------------------------------------------------------------- member cap


def cap_signal(connection: Connection) -> Signal:
    """The member cap: members linked against it."""
    cap = member_cap.status(connection)
    details = {"members": cap.members, "cap": cap.cap}
    if cap.cap is None:
        return Signal(
            "member_cap", "Member cap", "ok", f"{cap.members} members; no cap.", None, details
        )
    summary = f"{cap.members} of {cap.cap} members linked."
    step = None
    if cap.full:
        summary += " New connect sessions are refused (member_cap_reached)."
        step = (
            "Ask WHOOP to approve the app or raise its cap, then record it under Settings; "
            "or disconnect members who left."
        )
    elif cap.state == "warning":
        step = "Ask WHOOP to approve the app (or raise its cap) before the cap is reached."
    return Signal("member_cap", "Member cap", cap.state, summary, step, details)


# --------------------------------------------------------------------------- deliveries


def delivery_signals(connection: Connection) -> list[Signal]:
    """The connection's destinations as panel rows (``destinations.health``): one per
    destination problem, or a single ``deliveries_ok``. Not recorded or delivered here.
    """
    from whoopadmin.destinations import health as destinations_health

    return [
        Signal(
            "deliveries",
            "Deliveries",
            item["state"],
            item["message"],
            item["next_step"],
            {"name": item["name"], "link": item["link"], "destination_id": item["destination_id"]},
        )
        for item in destinations_health.signals(connection.id)
    ]


# --------------------------------------------------------------------------- together


def _recorded_signals(connection: Connection, previous: dict, now: datetime | None) -> list:
    """The signals whose states are recorded, judged against their previous states."""
    return [
        webhook_signal(connection, previous.get(silent.SIGNAL), now),
        budget_signal(connection, previous.get("rate_budget")),
        cap_signal(connection),
    ]


def signals(connection: Connection, now: datetime | None = None) -> list[Signal]:
    """Every signal of the connection as it stands (reads; writes nothing)."""
    out = _recorded_signals(connection, recorded(connection), now)
    deliveries = delivery_signals(connection)
    out.extend(deliveries)
    if not deliveries:
        out.append(
            Signal("deliveries", "Deliveries", "ok", "No destinations: nothing is delivered.")
        )
    return out


def connection_health(connection: Connection, now: datetime | None = None) -> dict[str, Any]:
    """The connection health panel's data: signals, their overall state, what to do."""
    items = signals(connection, now)
    return {"signals": items, "state": worst(s.state for s in items)}


def health_page(connection: Connection, now: datetime | None = None) -> dict[str, Any]:
    """The health page's data: the panel plus missed webhooks and WHOOP calls per day."""
    now = now or utcnow()
    page = connection_health(connection, now)
    page["missed"] = missed_by_day(connection, 7, now)
    try:
        page["calls"] = calls.by_day(connection.id, 7, now)
    except Exception:  # Redis down
        page["calls"] = None
    return page


def evaluate(connection: Connection, now: datetime | None = None) -> list[Signal]:
    """Learn, then record every signal's state; deliver ``connection_warning`` on changes."""
    now = now or utcnow()
    silent.learn(connection, now)
    previous = recorded(connection)
    current = _recorded_signals(connection, previous, now)
    for signal in current:
        state = signal.state
        if signal.key == silent.SIGNAL:
            # Only the silent flag is recorded and delivered; missed or refused webhooks
            # show on the panel (and in the counts) without an event each day.
            state = "problem" if signal.details.get("silent") else "ok"
        if state in SIGNAL_STATES:
            record(connection, signal, previous.get(signal.key), now, state)
    return current


def record(
    connection: Connection,
    signal: Signal,
    row: ConnectionSignal | None,
    now: datetime,
    state: str | None = None,
) -> bool:
    """Store the signal's state; on a change deliver one ``connection_warning``. True if changed.

    A first state of ``ok`` is not news; a first warning or problem is.
    """
    state = state or signal.state
    signal = Signal(
        signal.key, signal.label, state, signal.summary, signal.next_step, signal.details
    )
    details = _jsonable(signal.details)
    if row is None:
        row = ConnectionSignal(
            connection_id=connection.id,
            signal=signal.key,
            state=signal.state,
            since=now,
            message=signal.summary[:500],
            details=details,
            updated_at=now,
        )
        db.session.add(row)
        try:
            db.session.commit()
        except IntegrityError:  # another pass recorded it first
            db.session.rollback()
            return False
        changed, before = signal.state != "ok", None
    else:
        before = row.state
        changed = before != signal.state
        if changed:
            row.since = now
        row.state = signal.state
        row.message = signal.summary[:500]
        row.details = details
        row.updated_at = now
        db.session.commit()
    if changed:
        emit(
            connection.id,
            EVENT,
            {
                "signal": signal.key,
                "state": signal.state,
                "previous_state": before,
                "message": signal.summary,
                "next_step": signal.next_step,
                "details": details,
            },
        )
    return changed


def _jsonable(value):
    """Details as JSON (datetimes as ISO 8601 text)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 4)
    return value


# --------------------------------------------------------------------------- reconciliation

# Calls one reconciliation of a day costs when nothing was measured yet: the body
# measurement and one page of each of the four collections, plus one more page.
RECONCILE_COST = 6


def silent_reconcile(connection: Connection, now: datetime | None = None) -> list[int]:
    """The links of a silent connection to reconcile now, as many as the budget has room for.

    Room: what the day's low-priority share (``1 - HEALTH_BUDGET_RESERVE``) leaves above
    the forecast's projected use; each link costs the measured calls of a reconciliation
    today (or ``RECONCILE_COST``).
    """
    from whoopadmin.sync.models import SyncRun
    from whoopadmin.sync.service import budget_for

    now = now or utcnow()
    try:
        usage = budget_for(connection).usage()
        spent = calls.today(connection.id, now).get(calls.RECONCILE, 0)
    except Exception as exc:
        log.warning("no boosted reconciliation: budget unreadable (%s)", type(exc).__name__)
        return []
    fc = budget_forecast.forecast(usage, app_members(connection))
    runs = db.session.scalar(
        select(func.count(SyncRun.id)).where(
            SyncRun.reason == "reconcile",
            SyncRun.type == "body_measurement",
            SyncRun.finished_at >= now.replace(hour=0, minute=0, second=0, microsecond=0),
            SyncRun.link_id.in_(select(Link.id).where(Link.connection_id == connection.id)),
        )
    )
    cost = max(1.0, spent / runs) if runs else RECONCILE_COST
    share = 1 - float(current_app.config["HEALTH_BUDGET_RESERVE"])
    room = fc["day_limit"] * share - max(fc["projected"], fc["day_used"])
    allowed = max(0, int(room // cost))
    ids = db.session.scalars(
        select(Link.id)
        .where(Link.connection_id == connection.id, Link.status == "active")
        .order_by(Link.id)
        .limit(allowed)
    ).all()
    return list(ids)


# --------------------------------------------------------------------------- metrics

LEVELS = {"ok": 0, "warning": 1, "problem": 2}


def metric_families(envs: dict[int, str]) -> list[tuple[str, str, str, list]]:
    """Prometheus families (name, type, help, samples) for ``/metrics``."""
    missed = db.session.execute(
        select(
            MissedWebhookCount.connection_id,
            MissedWebhookCount.record_type,
            func.sum(MissedWebhookCount.count),
        ).group_by(MissedWebhookCount.connection_id, MissedWebhookCount.record_type)
    ).all()
    states = db.session.execute(
        select(ConnectionSignal.connection_id, ConnectionSignal.signal, ConnectionSignal.state)
    ).all()
    families = [
        (
            "whoopadmin_missed_webhooks_total",
            "counter",
            "Records reconciliation or a backfill stored that no webhook announced.",
            [({"environment": envs.get(c, "?"), "type": t}, int(n)) for c, t, n in missed],
        ),
        (
            "whoopadmin_health_signal",
            "gauge",
            "Connection health signals: 0 ok, 1 warning, 2 problem.",
            [
                ({"environment": envs.get(c, "?"), "signal": s}, LEVELS.get(state, 0))
                for c, s, state in states
            ],
        ),
    ]
    today, budget_rows, members = [], [], []
    for connection in db.session.scalars(select(Connection).order_by(Connection.id)):
        env = connection.environment
        cap = member_cap.status(connection)
        members.append(({"environment": env}, cap.members))
        try:
            for purpose, n in sorted(calls.today(connection.id).items()):
                today.append(({"environment": env, "purpose": purpose}, n))
            if connection.client_id:
                sig = budget_signal(connection)
                for window in ("minute", "day"):
                    share = sig.details.get(f"{window}_share")
                    if share is not None:
                        budget_rows.append(
                            ({"environment": env, "window": window}, round(share, 4))
                        )
        except Exception:  # Redis down: the database metrics still count
            continue
    families += [
        (
            "whoopadmin_whoop_calls_today",
            "gauge",
            "WHOOP API and token calls today (UTC), by purpose.",
            today,
        ),
        (
            "whoopadmin_rate_budget_used_ratio",
            "gauge",
            "Share of the WHOOP rate budget used (minute: the fuller of this and the last).",
            budget_rows,
        ),
        ("whoopadmin_members", "gauge", "Linked members (not revoked), per connection.", members),
    ]
    return families
