"""Deliveries' part of a connection's health: plain data for the dashboard's health panel.

``signals(connection_id)`` returns one dict per thing an operator should know about the
connection's destinations, each with ``name``, ``state`` (``ok``, ``warning`` or
``problem``), ``message``, ``next_step`` and ``link`` (a path on the admin host), plus
``destination_id``. A connection without destinations has no signals; one whose
destinations all work has a single ``deliveries_ok``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from whoopadmin.audit import utcnow
from whoopadmin.destinations.models import Delivery, DeliveryRecovery, Destination
from whoopadmin.destinations.service import overlap_until, setting
from whoopadmin.extensions import db


def _signal(name, state, message, next_step, link, destination_id=None) -> dict[str, Any]:
    return {
        "name": name,
        "state": state,
        "message": message,
        "next_step": next_step,
        "link": link,
        "destination_id": destination_id,
    }


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def signals(connection_id: int) -> list[dict[str, Any]]:
    """The deliveries signals of one connection (see the module docstring)."""
    destinations = db.session.scalars(
        select(Destination)
        .where(Destination.connection_id == connection_id)
        .order_by(Destination.id)
    ).all()
    if not destinations:
        return []
    ids = [d.id for d in destinations]
    held = dict(
        db.session.execute(
            select(Delivery.destination_id, func.count(Delivery.id))
            .where(Delivery.destination_id.in_(ids), Delivery.status == "held")
            .group_by(Delivery.destination_id)
        ).all()
    )
    recoveries = {
        r.destination_id: r
        for r in db.session.scalars(
            select(DeliveryRecovery).where(DeliveryRecovery.running_for.in_(ids))
        )
    }
    now = utcnow()
    days = setting("DESTINATION_DISABLE_AFTER_DAYS")
    found: list[dict[str, Any]] = []
    for d in destinations:
        page = f"/destinations/{d.id}"
        name = d.url
        if d.disabled_at is not None:
            if d.disabled_reason == "failing":
                found.append(
                    _signal(
                        "destination_disabled",
                        "problem",
                        f"{name} was disabled on {_when(d.disabled_at)}: every delivery "
                        f"failed for {days:g} days."
                        + (" A test event has succeeded since." if d.failing_since is None else ""),
                        "Fix the receiver (Send test event shows when it answers again), "
                        "then enable the destination and recover what it missed.",
                        page,
                        d.id,
                    )
                )
            else:
                found.append(
                    _signal(
                        "destination_disabled",
                        "warning",
                        f"{name} was disabled by an operator on {_when(d.disabled_at)}.",
                        "Enable it when the receiver is ready, then recover what it missed.",
                        page,
                        d.id,
                    )
                )
        elif d.failing_since is not None and d.active:
            found.append(
                _signal(
                    "destination_failing",
                    "warning",
                    f"Every delivery to {name} has failed since {_when(d.failing_since)}; it "
                    f"will be disabled on {_when(d.failing_since + timedelta(days=days))}.",
                    "Check the delivery log for the receiver's answers and fix it.",
                    page,
                    d.id,
                )
            )
        if held.get(d.id):
            found.append(
                _signal(
                    "deliveries_waiting",
                    "warning" if d.disabled_at is None else "problem",
                    f"{_plural(held[d.id], 'delivery', 'deliveries')} to {name} held, "
                    "waiting to be recovered.",
                    "Start a recovery (enable the destination first)."
                    if d.disabled_at is not None
                    else "Start a recovery: it sends them in order.",
                    f"{page}/recovery",
                    d.id,
                )
            )
        recovery = recoveries.get(d.id)
        if recovery is not None:
            found.append(
                _signal(
                    "recovery_running",
                    "ok",
                    f"Recovery of {name} running: {recovery.done} of {recovery.total} done "
                    f"({recovery.sent} sent, {recovery.failed} failed).",
                    "Nothing to do; it can be cancelled on the recovery page.",
                    f"{page}/recovery",
                    d.id,
                )
            )
        until = overlap_until(d, now)
        if until is not None:
            found.append(
                _signal(
                    "secret_overlap",
                    "ok",
                    f"{name}: the previous signing secret still signs beside the new one "
                    f"until {_when(until)}.",
                    "Once your receiver verifies with the new secret, end the overlap.",
                    page,
                    d.id,
                )
            )
    if not found:
        found.append(
            _signal(
                "deliveries_ok",
                "ok",
                f"{_plural(len(destinations), 'destination', 'destinations')}: deliveries work.",
                "Nothing to do.",
                "/destinations",
            )
        )
    return found
