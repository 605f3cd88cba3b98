"""The audit log page: one page of entries, each target named and linked to its page."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flask import url_for
from sqlalchemy import select

from whoopadmin.audit import AuditEvent
from whoopadmin.extensions import db

PAGE_SIZE = 100


@dataclass(frozen=True)
class Target:
    """What an audit entry was about: ``kind`` (Connection, Link…), a label, maybe a URL."""

    kind: str
    label: str
    url: str | None = None


def page(actor: str, action: str, before: int | None) -> tuple[list[AuditEvent], int | None]:
    """The newest entries matching the filters, after the keyset cursor ``before``."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(PAGE_SIZE + 1)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(AuditEvent.action.startswith(action, autoescape=True))
    if before:
        query = query.where(AuditEvent.id < before)
    rows = list(db.session.scalars(query))
    more = len(rows) > PAGE_SIZE
    return rows[:PAGE_SIZE], (rows[PAGE_SIZE - 1].id if more else None)


def _connection(c) -> Target:
    return Target(
        "Connection",
        f"{c.environment} ({c.display_name})",
        url_for("setup.resume", environment=c.environment),
    )


def _link(link) -> Target:
    return Target("Link", link.reference_id, url_for("support.show_link", uid=link.uid))


def _staff(user) -> Target:
    return Target("Staff", user.email, url_for("auth.show_staff", user_id=user.id))


def _api_key(key) -> Target:
    return Target("API key", f"{key.name} ({key.prefix}…)", url_for("apikeys.list_keys"))


def _destination(d) -> Target:
    return Target(
        "Destination", d.url, url_for("destinations.edit_destination", destination_id=d.id)
    )


def _delivery(d) -> Target:
    return Target(
        "Delivery",
        f"#{d.id} ({d.event_type})",
        url_for("destinations.show_delivery", delivery_id=d.id),
    )


def _kinds() -> dict[str, tuple[type, Callable, str]]:
    """target_type → (model, how to name a row, what to call it once it is gone)."""
    from whoopadmin.api.models import ApiKey
    from whoopadmin.auth.models import StaffUser
    from whoopadmin.connect.models import Link
    from whoopadmin.destinations.models import Delivery, Destination
    from whoopadmin.setup.models import Connection

    return {
        "connections": (Connection, _connection, "Connection"),
        "links": (Link, _link, "Link"),
        "staff_users": (StaffUser, _staff, "Staff"),
        "api_keys": (ApiKey, _api_key, "API key"),
        "destinations": (Destination, _destination, "Destination"),
        "deliveries": (Delivery, _delivery, "Delivery"),
    }


def targets(events: Iterable[AuditEvent]) -> dict[int, Target]:
    """Each entry's target, named and linked: one query per kind of target on the page.

    A target that no longer exists keeps its label from the entry's details where they
    have one (a deleted destination's URL) and gets no link.
    """
    kinds = _kinds()
    wanted: dict[str, set[int]] = defaultdict(set)
    events = list(events)
    for e in events:
        if e.target_type in kinds and e.target_id and e.target_id.isdigit():
            wanted[e.target_type].add(int(e.target_id))
    found: dict[tuple[str, str], Target] = {}
    for target_type, ids in wanted.items():
        model, name, _ = kinds[target_type]
        for row in db.session.scalars(select(model).where(model.id.in_(ids))):
            found[(target_type, str(row.id))] = name(row)
    out = {}
    for e in events:
        if not e.target_type:
            continue
        target = found.get((e.target_type, e.target_id or ""))
        if target is None:
            kind = kinds[e.target_type][2] if e.target_type in kinds else e.target_type
            details = e.details or {}
            label = details.get("url") or details.get("email") or details.get("name")
            label = f"{label} (deleted)" if label else f"#{e.target_id} (no longer exists)"
            target = Target(kind.replace("_", " ").capitalize() if kind.islower() else kind, label)
        out[e.id] = target
    return out
