"""Status transitions and the re-check schedule (pure functions, no DNS)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from whoopadmin.domains import (
    GIVE_UP_AFTER,
    CheckResult,
    ExpectedRecord,
    RecordCheck,
    backoff_delay,
    next_check_at,
    next_status,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
RECORD = ExpectedRecord("routing", "CNAME", "whoop.acme.test", "whoop", "edge.example.")


def result(status: str, *, temporary: bool = False, answered: bool = True) -> CheckResult:
    """A CheckResult as check_domain would return it for *status*."""
    state = {
        "verified": "ok",
        "pending_dns": "missing",
        "misconfigured": "misconfigured",
        "propagating": "propagating",
    }[status]
    return CheckResult(
        hostname="whoop.acme.test",
        zone="acme.test",
        status=status,
        temporary=temporary,
        findings=[],
        records=[RecordCheck(RECORD, state if answered else "unknown")],
        nameservers=["127.0.0.1:53"],
        checked_at=T0.isoformat(),
    )


def test_backoff_doubles_from_a_minute_up_to_four_hours():
    minutes = [backoff_delay(n) / timedelta(minutes=1) for n in range(11)]
    assert minutes == [1, 2, 4, 8, 16, 32, 64, 128, 240, 240, 240]
    assert backoff_delay(10_000) == timedelta(hours=4)
    with pytest.raises(ValueError):
        backoff_delay(-1)


def test_schedule_over_seven_days_then_give_up():
    now, attempt, times = T0, 0, []
    while (when := next_check_at("pending_dns", attempt=attempt, since=T0, now=now)) is not None:
        assert when - now <= timedelta(hours=4)
        times.append(when)
        now, attempt = when, attempt + 1
    assert times[0] == T0 + timedelta(minutes=1)
    assert times[-1] == T0 + GIVE_UP_AFTER  # a last check exactly at the deadline
    assert 40 <= len(times) <= 80


def test_schedule_for_other_statuses():
    later = T0 + timedelta(days=30)
    assert next_check_at("verified", attempt=5, since=T0, now=later) == later + timedelta(days=1)
    assert next_check_at("active", attempt=0, since=T0, now=later) == later + timedelta(days=1)
    assert next_check_at("timed_out", attempt=0, since=T0, now=T0) is None
    assert next_check_at("moved", attempt=2, since=T0, now=T0) == T0 + timedelta(minutes=4)
    with pytest.raises(ValueError):
        next_check_at("bogus", attempt=0, since=T0, now=T0)


@pytest.mark.parametrize(
    ("previous", "status", "temporary", "answered", "expected"),
    [
        # A new or waiting domain follows what the check saw.
        (None, "pending_dns", False, True, "pending_dns"),
        (None, "verified", False, True, "verified"),
        ("pending_dns", "misconfigured", False, True, "misconfigured"),
        ("misconfigured", "propagating", False, True, "propagating"),
        ("propagating", "verified", False, True, "verified"),
        ("misconfigured", "pending_dns", False, True, "pending_dns"),
        # Nothing answered at all: nothing changes.
        ("misconfigured", "pending_dns", True, False, "misconfigured"),
        (None, "pending_dns", True, False, "pending_dns"),
        # Some server timed out but the others answered: their answer counts.
        ("pending_dns", "misconfigured", True, True, "misconfigured"),
        ("pending_dns", "verified", True, True, "verified"),
        # Verified and active domains stay so unless a clean check proves otherwise.
        ("verified", "verified", False, True, "verified"),
        ("active", "verified", False, True, "active"),
        ("verified", "misconfigured", False, True, "moved"),
        ("active", "pending_dns", False, True, "moved"),
        ("verified", "pending_dns", True, False, "verified"),
        ("active", "misconfigured", True, True, "active"),
        ("verified", "propagating", False, True, "verified"),
        # Moved comes back when fixed; timed out only when it verifies.
        ("moved", "verified", False, True, "verified"),
        ("moved", "misconfigured", False, True, "moved"),
        ("moved", "pending_dns", True, False, "moved"),
        ("timed_out", "pending_dns", False, True, "timed_out"),
        ("timed_out", "verified", False, True, "verified"),
    ],
)
def test_next_status(previous, status, temporary, answered, expected):
    outcome = result(status, temporary=temporary, answered=answered)
    assert outcome.answered is answered
    assert next_status(previous, outcome) == expected


def test_giving_up_after_seven_days():
    almost = T0 + GIVE_UP_AFTER - timedelta(seconds=1)
    late = T0 + GIVE_UP_AFTER
    assert next_status("pending_dns", result("pending_dns"), since=T0, now=almost) == "pending_dns"
    assert next_status("pending_dns", result("pending_dns"), since=T0, now=late) == "timed_out"
    assert next_status("misconfigured", result("misconfigured"), since=T0, now=late) == "timed_out"
    assert next_status("moved", result("misconfigured"), since=T0, now=late) == "timed_out"
    # Verifying at the last moment still wins.
    assert next_status("propagating", result("verified"), since=T0, now=late) == "verified"
    # Verified domains never time out: they are re-checked daily for ever.
    assert next_status("verified", result("verified"), since=T0, now=late) == "verified"


def test_unknown_statuses_are_refused():
    with pytest.raises(ValueError):
        next_status("bogus", result("verified"))
    with pytest.raises(ValueError):
        next_status(
            None, result("verified").__class__(**{**vars(result("verified")), "status": "x"})
        )
