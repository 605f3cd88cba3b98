"""Health jobs: the periodic evaluation, the cause check of silent connections."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.health import service
from whoopadmin.health import webhooks as silent
from whoopadmin.setup.models import Connection

log = logging.getLogger(__name__)


def evaluate_all(now: datetime | None = None) -> dict[str, int]:
    """Evaluate every connection's signals (cron: every minute); queue follow-up work.

    For a connection whose webhooks are silent: a cause check when none is recent, and a
    reconciliation of its links every ``HEALTH_SILENT_RECONCILE_SECONDS`` within the
    budget. Returns counts for the job's result.
    """
    now = now or utcnow()
    done = {"connections": 0, "silent": 0, "reconciles": 0}
    ids = db.session.scalars(select(Connection.id).order_by(Connection.id)).all()
    for connection_id in ids:
        connection = db.session.get(Connection, connection_id)
        try:
            signals = service.evaluate(connection, now)
        except Exception:
            db.session.rollback()
            log.exception("health evaluation of connection %s failed", connection_id)
            continue
        done["connections"] += 1
        webhook = next(s for s in signals if s.key == silent.SIGNAL)
        if webhook.details.get("silent"):
            done["silent"] += 1
            _queue_cause_check(connection, now)
            done["reconciles"] += _queue_reconciles(connection, now)
    return done


def _queue_cause_check(connection: Connection, now: datetime) -> None:
    from whoopadmin.jobs import enqueue_once

    activity = silent.activity_of(connection)
    row = service.recorded(connection).get(silent.SIGNAL)
    every = timedelta(seconds=float(current_app.config["HEALTH_CAUSE_CHECK_SECONDS"]))
    checked = activity.causes_checked_at if activity else None
    if checked is not None and row is not None and checked >= row.since and now - checked < every:
        return
    # Beside the DNS checks: probes from outside, kept off the webhook queue's hot path.
    enqueue_once(
        "domains",
        "whoopadmin.health.jobs.check_causes",
        connection.id,
        job_id=f"health-causes-{connection.id}",
    )


def _queue_reconciles(connection: Connection, now: datetime) -> int:
    """Queue the silent connection's reconciliations when one is due; how many were queued."""
    from whoopadmin.jobs import RETRY, enqueue_once
    from whoopadmin.redisconn import get_redis

    every = int(float(current_app.config["HEALTH_SILENT_RECONCILE_SECONDS"]))
    # One boosted round per interval, named by the interval it falls in (by ``now``, so a
    # simulated clock gets its rounds too); the key outlives its interval.
    stamp = int(now.timestamp()) // every
    key = f"whoopadmin:health:reconcile:{connection.id}:{stamp}"
    if not get_redis().set(key, 1, nx=True, ex=2 * every):
        return 0
    link_ids = service.silent_reconcile(connection, now)
    for link_id in link_ids:
        enqueue_once(
            "sync",
            "whoopadmin.sync.jobs.reconcile_link",
            link_id,
            1,
            job_id=f"reconcile-silent-{link_id}-{stamp}",
            retry=RETRY,
        )
    return len(link_ids)


def check_causes(connection_id: int) -> str:
    """Check the likely causes of a connection's silent webhooks (queue ``domains``)."""
    connection = db.session.get(Connection, connection_id)
    if connection is None:
        return "no such connection"
    now = utcnow()
    causes = silent.check_causes(connection, now)
    silent.store_causes(connection, causes, now)
    failing = [c["key"] for c in causes if c["status"] == "problem"]
    return "failing: " + (", ".join(failing) if failing else "none")
