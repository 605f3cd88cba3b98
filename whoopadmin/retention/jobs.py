"""The retention cron job."""

from __future__ import annotations


def enforce_retention() -> dict:
    """Remove what every connection's retention periods no longer keep (cron: hourly)."""
    from whoopadmin.retention import service

    return service.enforce_all()
