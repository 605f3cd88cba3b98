"""Background DNS checks for connections' subdomains."""

from __future__ import annotations

from whoopadmin.extensions import db
from whoopadmin.setup import service
from whoopadmin.setup.models import Connection


def check_domain(connection_id: int) -> str | None:
    """Check one connection's DNS records now; return its new status."""
    connection = db.session.get(Connection, connection_id)
    if connection is None or not connection.hostname:
        return None  # deleted or reset since the job was queued: nothing to do
    service.run_dns_check(connection)
    return connection.status


def check_due_domains() -> int:
    """Queue a check for every connection whose next check is due (run by the cron)."""
    from whoopadmin.jobs import enqueue_once

    due = service.due_for_dns_check()
    for connection_id in due:
        enqueue_once("domains", check_domain, connection_id, job_id=f"dns-check-{connection_id}")
    return len(due)
