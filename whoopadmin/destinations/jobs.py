"""Background work of deliveries beyond single attempts: recoveries and the cron passes.

Every function takes ids (never secrets) and runs in the job class's app context.
"""

from __future__ import annotations

from whoopadmin.destinations import controls, recovery


def run_recovery(recovery_id: int) -> str:
    """One slice of a recovery (queue ``deliveries``); it queues the next slice itself."""
    return recovery.run(recovery_id)


def resume_recoveries() -> int:
    """Cron (every minute): queue running recoveries whose job died or was lost."""
    return recovery.resume_stalled()


def end_expired_overlaps() -> int:
    """Cron (every minute): forget previous signing secrets whose overlap is over."""
    return controls.end_expired_overlaps()


def disable_failing() -> int:
    """Cron (every 10 minutes): disable destinations that have failed for days."""
    return controls.disable_failing()
