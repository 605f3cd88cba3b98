"""Domain statuses over time: the next status after a check, and when to check again.

Pure functions of their arguments (the caller passes ``now``), so the job that runs the
checks and the tests agree on every transition:

- ``pending_dns`` / ``misconfigured`` / ``propagating`` follow each check's result and
  are re-checked with back-off: 1 minute, doubling, at most 4 hours apart;
- after 7 days without verifying, the domain is ``timed_out`` and no longer checked
  (a manual "Check now" that verifies still rescues it);
- ``verified`` (and ``active``, which the caller sets once traffic flows) are re-checked
  daily; a check that now fails for sure makes them ``moved``, which is checked with
  back-off again;
- a DNS timeout never makes anything worse by itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from whoopadmin.domains.checks import CheckResult

__all__ = [
    "ACTIVE",
    "BACKOFF_FIRST",
    "BACKOFF_MAX",
    "CHECK_STATUSES",
    "GIVE_UP_AFTER",
    "MISCONFIGURED",
    "MOVED",
    "PENDING_DNS",
    "PROPAGATING",
    "RECHECK_VERIFIED",
    "STATUSES",
    "TIMED_OUT",
    "VERIFIED",
    "backoff_delay",
    "next_check_at",
    "next_status",
]

PENDING_DNS = "pending_dns"
MISCONFIGURED = "misconfigured"
PROPAGATING = "propagating"
VERIFIED = "verified"
ACTIVE = "active"
MOVED = "moved"
TIMED_OUT = "timed_out"

#: What a single check can conclude (``CheckResult.status``).
CHECK_STATUSES = (PENDING_DNS, MISCONFIGURED, PROPAGATING, VERIFIED)
#: Every status a stored domain can have.
STATUSES = (PENDING_DNS, MISCONFIGURED, PROPAGATING, VERIFIED, ACTIVE, MOVED, TIMED_OUT)

BACKOFF_FIRST = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=4)
GIVE_UP_AFTER = timedelta(days=7)
RECHECK_VERIFIED = timedelta(days=1)

_GOOD = (VERIFIED, ACTIVE)


def backoff_delay(attempt: int) -> timedelta:
    """Delay after check number *attempt* (0-based): 1, 2, 4, … minutes, at most 4 hours."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    # 2**8 minutes already exceeds the cap; don't compute huge powers for late attempts.
    return min(BACKOFF_FIRST * (2 ** min(attempt, 16)), BACKOFF_MAX)


def next_status(
    previous: str | None,
    result: CheckResult,
    *,
    since: datetime | None = None,
    now: datetime | None = None,
) -> str:
    """The domain's status after *result*, given its *previous* status (None for a new domain).

    *since* is when the domain started waiting (set up, or became ``moved``); with *now*
    it makes a domain that still does not verify after :data:`GIVE_UP_AFTER` ``timed_out``.
    """
    if previous is not None and previous not in STATUSES:
        raise ValueError(f"unknown status {previous!r}")
    new = result.status
    if new not in CHECK_STATUSES:
        raise ValueError(f"unknown check status {new!r}")
    if previous in _GOOD:
        if new == VERIFIED:
            return previous
        # Timeouts, SERVFAILs or nameservers that still disagree are not proof that the
        # domain moved away; the daily re-check will look again.
        if result.temporary or new == PROPAGATING:
            return previous
        return MOVED
    if new == VERIFIED:
        return VERIFIED
    if previous == TIMED_OUT:
        return TIMED_OUT
    if result.temporary and not result.answered:
        # Nothing answered at all: we learned nothing, so nothing changes.
        new = previous or PENDING_DNS
    if previous == MOVED:
        new = MOVED
    if since is not None and now is not None and now - since >= GIVE_UP_AFTER:
        return TIMED_OUT
    return new


def next_check_at(status: str, *, attempt: int, since: datetime, now: datetime) -> datetime | None:
    """When to check a domain in *status* again, or None to stop checking.

    *attempt* counts the checks already made since *since* (the start of the current
    wait); verified and active domains are re-checked daily, timed-out ones never.
    """
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    if status == TIMED_OUT:
        return None
    if status in _GOOD:
        return now + RECHECK_VERIFIED
    if now - since >= GIVE_UP_AFTER:
        return None
    return min(now + backoff_delay(attempt), since + GIVE_UP_AFTER)
