"""The wizard's steps, and which of them a connection has finished."""

from __future__ import annotations

from dataclasses import dataclass

from whoopadmin.setup import service
from whoopadmin.setup.models import Connection

STEPS = (
    ("credentials", "Credentials", "setup.edit_credentials"),
    ("subdomain", "Subdomain", "setup.edit_subdomain"),
    ("dns", "DNS records", "setup.show_dns"),
    ("certificate", "Certificate", "setup.show_certificate"),
    ("whoop", "WHOOP registration", "setup.show_whoop"),
    ("go-live", "Go live", "setup.show_go_live"),
)


@dataclass(frozen=True)
class Step:
    """One step in the progress indicator."""

    key: str
    label: str
    endpoint: str
    done: bool


def progress(connection: Connection) -> list[Step]:
    """Every step with whether it is done."""
    checks = {item.key: item.ok for item in service.checklist(connection)}
    done = {
        "credentials": checks["credentials"],
        "subdomain": checks["subdomain"],
        "dns": checks["dns"],
        "certificate": checks["certificate"],
        "whoop": checks["whoop"],
        "go-live": connection.live_at is not None,
    }
    return [Step(key, label, endpoint, done[key]) for key, label, endpoint in STEPS]


def first_open(connection: Connection) -> str:
    """The first step not done yet (the last one when all are)."""
    for step in progress(connection):
        if not step.done:
            return step.key
    return STEPS[-1][0]


def missing_for_live(connection: Connection) -> Step | None:
    """The first step still open while the connection is not live (None once live)."""
    if connection.live_at is not None:
        return None
    return next(step for step in progress(connection) if not step.done)


def endpoint(key: str) -> str:
    """The view of a step."""
    return next(e for k, _, e in STEPS if k == key)
