"""Which link a completed consent may write: reconnect targets and the reference-id policy.

A link is identified by (connection, WHOOP user id). When the member who consented
already has a link on the connection under another ``reference_id``, the connection's
policy decides: ``refuse`` (the default: the attempt fails with ``already_linked`` and
the existing link is left exactly as it was) or ``move`` (the link follows the new
reference id; the move is on its timeline and delivered as ``user.reference_changed``).
A reconnect link that support made for link L only works for L's WHOOP member
(``wrong_account`` otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

from whoopadmin.connect.models import ConnectSession, Link
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection

REFUSE = "refuse"
MOVE = "move"
# The settings page's choices, in its words.
POLICIES = (
    (REFUSE, "Refuse: the member stays linked under the first reference id (recommended)"),
    (MOVE, "Move: the existing link moves to the new reference id"),
)

# What a successful decision writes on the timeline, and which event it delivers.
TIMELINE_KIND = {"create": "connect", "reconnect": "user_reauth", "move": "reference_changed"}
EVENT_TYPE = {
    "create": "auth.success",
    "reconnect": "user_reauth",
    "move": "user.reference_changed",
}


@dataclass(frozen=True)
class Decision:
    """``create``, ``reconnect``, ``move`` or ``refuse`` (with a reason); ``link``: the one
    concerned (the existing link, or the reconnect link's target)."""

    action: str
    link: Link | None = None
    reason: str | None = None

    @property
    def refused(self) -> bool:
        """Whether the consent must not touch any link."""
        return self.action == "refuse"


def decide(
    connection: Connection, session: ConnectSession, existing: Link | None, whoop_user_id: int
) -> Decision:
    """Decide what the consent of ``whoop_user_id`` through ``session`` may do."""
    wrong = _wrong_account(connection, session, whoop_user_id)
    if wrong is not None:
        return wrong
    if existing is None:
        return Decision("create")
    if existing.reference_id == session.reference_id:
        return Decision("reconnect", existing)
    if connection.reference_id_policy == MOVE:
        return Decision("move", existing)
    return Decision("refuse", existing, "already_linked")


def _wrong_account(
    connection: Connection, session: ConnectSession, whoop_user_id: int
) -> Decision | None:
    """A reconnect link for link L refuses every member but L's."""
    if session.target_link_id is None:
        return None
    target = db.session.get(Link, session.target_link_id)
    if target is None or target.connection_id != connection.id:
        return Decision("refuse", None, "wrong_account")
    if target.whoop_user_id != whoop_user_id:
        return Decision("refuse", target, "wrong_account")
    return None


def clean_policy(value: str | None) -> str:
    """A valid policy name, or ValueError."""
    if value not in (REFUSE, MOVE):
        raise ValueError(f"The policy must be {REFUSE!r} or {MOVE!r}.")
    return value
