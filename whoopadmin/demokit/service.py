"""Publishing a connection's DNS records in the demo's own DNS server (demo only).

The demo's DNS server plays the operator's DNS provider. Pressing "Publish these records
in the demo DNS" is the operator adding the records there: an audited action whose audit
entry holds the records, and the zone is built from those entries. Nothing else stores
what was published, so the audit log shows exactly what the DNS server serves.
"""

from __future__ import annotations

import logging

from flask import current_app, has_app_context
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from whoopadmin import audit
from whoopadmin.audit import AuditEvent
from whoopadmin.demokit import dnszone
from whoopadmin.extensions import db
from whoopadmin.setup import service as setup
from whoopadmin.setup.models import Connection

log = logging.getLogger(__name__)

PUBLISH_ACTION = "connection.demo_dns_publish"
# The running demo puts a function here that reloads its DNS zone at once.
RELOAD_EXTENSION = "whoopadmin.demo_dns_reload"


class DemoError(ValueError):
    """A publish the demo refuses; the message is shown as is."""


def enabled() -> bool:
    """Whether this app is the demo (``whoopadmin demo`` sets WHOOPADMIN_DEMO)."""
    return bool(current_app.config.get("DEMO"))


def publish_records(actor, connection: Connection) -> int:
    """Serve the connection's expected records in the demo DNS; queue a check. How many."""
    if not enabled():
        raise DemoError("Only `whoopadmin demo` has a DNS server to publish records in.")
    hostname = connection.hostname
    if not hostname:
        raise DemoError("Choose the subdomain first.")
    if not dnszone.in_zone(hostname):
        raise DemoError(
            f"The demo DNS serves only names under {dnszone.ZONE}, and {hostname} is not "
            f"one of them: use a subdomain such as whoop.{dnszone.ZONE}."
        )
    if dnszone.reserved(hostname):
        raise DemoError(
            f"{hostname} is a name the demo zone uses itself; choose another subdomain, "
            f"such as whoop.{dnszone.ZONE}."
        )
    records = [
        {"name": r.name, "type": r.type, "value": r.value, "ttl": r.ttl}
        for r in setup.expected_records(connection)
    ]
    audit.record(actor, PUBLISH_ACTION, connection, hostname=hostname, records=records)
    db.session.commit()
    reload = current_app.extensions.get(RELOAD_EXTENSION)
    if reload is not None:
        reload()
    setup.request_dns_check(connection)
    return len(records)


def published_records() -> list[dict]:
    """The records published for each connection's current hostname (the latest wins)."""
    latest: dict[str, dict] = {}
    for target_id, details in db.session.execute(
        select(AuditEvent.target_id, AuditEvent.details)
        .where(AuditEvent.action == PUBLISH_ACTION)
        .order_by(AuditEvent.id)
    ):
        latest[target_id] = details or {}
    hostnames = {
        str(cid): hostname
        for cid, hostname in db.session.execute(select(Connection.id, Connection.hostname))
    }
    records: list[dict] = []
    for target_id, details in latest.items():
        # A subdomain changed since it was published has no records until published again.
        if details.get("hostname") and hostnames.get(target_id) == details["hostname"]:
            records.extend(r for r in details.get("records", []) if isinstance(r, dict))
    return records


def zone_text(publish_all: bool = False) -> str:
    """The demo zone now; ``publish_all`` serves every connection's records unasked (tests)."""
    connections = db.session.scalars(select(Connection).where(Connection.hostname.is_not(None)))
    tokens = {}
    everything = []
    for connection in connections:
        tokens[connection.hostname] = connection.validation_token
        if publish_all and dnszone.in_zone(connection.hostname):
            everything += [r.to_dict() for r in setup.expected_records(connection)]
    return dnszone.zone_for(everything if publish_all else published_records(), tokens)


_listening = False


def reload_when_connections_change() -> None:
    """In the demo process: rebuild the zone right after a commit that changed a connection.

    A new subdomain gets a new validation token, and the wizard queues its DNS check right
    after saving it: without this the check could run before the zone (refreshed every
    two seconds otherwise) holds a prepared name's validation record.
    """
    global _listening
    if _listening:
        return
    _listening = True

    @event.listens_for(Session, "after_flush")
    def note_connection_change(session: Session, _context) -> None:
        if any(isinstance(o, Connection) for o in (*session.new, *session.dirty)):
            session.info["demo_zone_stale"] = True

    @event.listens_for(Session, "after_commit")
    def reload_zone(session: Session) -> None:
        if not session.info.pop("demo_zone_stale", False) or not has_app_context():
            return
        reload = current_app.extensions.get(RELOAD_EXTENSION)
        if reload is not None:
            try:
                reload()
            except Exception as exc:  # the two-second refresh will catch up
                log.warning("demo zone not reloaded: %s", type(exc).__name__)
