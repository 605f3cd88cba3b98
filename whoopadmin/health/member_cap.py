"""The member cap: how many WHOOP members a connection may link, and refusing the next one.

WHOOP caps an app it has not approved at 10 members (``setup.service.MEMBER_CAP``). A
connection's ``member_cap`` overrides that (WHOOP may grant another number); left empty
it is WHOOP's default: 10 until the operator records WHOOP's approval, none after.

**Who counts**: every link that is not ``revoked`` — ``active``, ``reauth_required``
and ``error`` links still hold a grant at WHOOP. Disconnecting a link through whoopadmin
revokes the grant at WHOOP (``DELETE /v2/user/access``) and frees its place; a revoked
member who connects again is a new member and counts against the cap again.

**Who is refused at the cap**: a new member only. A connect session for a reference id
that already has a live link is a reconnect and is allowed (it adds no member); at the
OAuth callback the WHOOP user id decides, so a member linked under another reference id
is let through too, and a newcomer who slipped past the page (two at once) is refused
there and the fresh grant revoked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from whoopadmin.extensions import db
from whoopadmin.setup import service as setup_service
from whoopadmin.setup.models import Connection

REASON = "member_cap_reached"


class MemberCapReached(Exception):
    """A new member would exceed the connection's member cap."""

    code = REASON


@dataclass(frozen=True)
class CapStatus:
    """Members linked against the cap (None: no cap), and the resulting state."""

    members: int
    cap: int | None
    state: str  # ok, warning (from HEALTH_MEMBER_CAP_WARN of the cap), problem (at the cap)

    @property
    def full(self) -> bool:
        """Whether a new member would be refused."""
        return self.cap is not None and self.members >= self.cap


def effective_cap(connection: Connection) -> int | None:
    """The connection's cap: its own number, else WHOOP's default (none once approved)."""
    if connection.member_cap is not None:
        return connection.member_cap
    return None if connection.approved_by_whoop else setup_service.MEMBER_CAP


def status(connection: Connection) -> CapStatus:
    """How full the connection is."""
    members = setup_service.member_count(connection)
    cap = effective_cap(connection)
    state = "ok"
    if cap is not None:
        warn_at = math.ceil(cap * float(current_app.config["HEALTH_MEMBER_CAP_WARN"]))
        if members >= cap:
            state = "problem"
        elif members >= warn_at:
            state = "warning"
    return CapStatus(members, cap, state)


def message(cap: CapStatus) -> str | None:
    """What the connect-link and go-live pages say about the cap, if anything."""
    if cap.state == "ok":
        return None
    if cap.full:
        return (
            f"{cap.members} of {cap.cap} members linked: new connect sessions are refused "
            "(member_cap_reached). WHOOP refuses more until it approves your app or raises "
            "its cap; record that under Settings."
        )
    return (
        f"{cap.members} of {cap.cap} members linked: WHOOP caps this app at {cap.cap}. "
        "Ask WHOOP to approve the app (or raise its cap) before you reach it."
    )


def _live_link(connection: Connection, **match) -> bool:
    from whoopadmin.connect.models import Link

    query = select(Link.id).where(Link.connection_id == connection.id, Link.status != "revoked")
    for name, value in match.items():
        query = query.where(getattr(Link, name) == value)
    return db.session.scalar(query.limit(1)) is not None


def check_session(connection: Connection, reference_id: str) -> None:
    """Raise MemberCapReached if a session for ``reference_id`` would add a member past the cap."""
    cap = status(connection)
    if cap.full and not _live_link(connection, reference_id=reference_id):
        raise MemberCapReached(_refusal(cap))


def check_member(connection: Connection, whoop_user_id: int) -> None:
    """Raise MemberCapReached if linking this WHOOP user would add a member past the cap."""
    cap = status(connection)
    if cap.full and not _live_link(connection, whoop_user_id=whoop_user_id):
        raise MemberCapReached(_refusal(cap))


def _refusal(cap: CapStatus) -> str:
    return (
        f"This connection has reached its member cap ({cap.members} of {cap.cap} members "
        "linked). Record WHOOP's approval or a new cap under the connection's Settings, or "
        "disconnect members who left."
    )
