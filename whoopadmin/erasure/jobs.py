"""The erasure cron job: carry out the erasures whose grace period is over."""

from __future__ import annotations


def erase_due() -> int:
    """Carry out due erasures (cron: every 5 minutes); return how many were done."""
    from whoopadmin.erasure import service

    return service.erase_due()
