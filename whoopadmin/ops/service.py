"""What the dashboard, the jobs page and /metrics show: counts from the database and Redis."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry
from sqlalchemy import func, select

from whoopadmin.audit import utcnow
from whoopadmin.connect.counts import counts as link_counts
from whoopadmin.connect.models import LinkEvent
from whoopadmin.extensions import db
from whoopadmin.health import member_cap
from whoopadmin.jobs import QUEUES, job_class_for
from whoopadmin.redisconn import get_redis
from whoopadmin.setup import service as setup_service
from whoopadmin.setup.models import Connection
from whoopadmin.webhooks.models import WebhookEvent, WebhookRejection

SIGNATURE_REASONS = ("bad_signature", "stale_timestamp", "missing_signature", "bad_timestamp")


def queue_depths() -> dict[str, dict[str, int]] | None:
    """Per queue: waiting and failed jobs (None when Redis does not answer)."""
    redis = get_redis()
    try:
        out = {}
        for name in QUEUES:
            queue = Queue(name, connection=redis)
            out[name] = {"waiting": queue.count, "failed": FailedJobRegistry(queue=queue).count}
        return out
    except Exception:
        return None


def connection_overview(connection: Connection, since_hours: int = 24) -> dict[str, Any]:
    """One connection's health for the dashboard."""
    since = utcnow() - timedelta(hours=since_hours)
    received = db.session.scalar(
        select(func.count(WebhookEvent.id)).where(
            WebhookEvent.connection_id == connection.id, WebhookEvent.received_at >= since
        )
    )
    rejected = dict(
        db.session.execute(
            select(WebhookRejection.reason, func.sum(WebhookRejection.count))
            .where(
                WebhookRejection.connection_id == connection.id,
                WebhookRejection.day >= since.date(),
            )
            .group_by(WebhookRejection.reason)
        ).all()
    )
    statuses = link_counts([connection.id])
    budget = None
    if connection.client_id:
        try:
            from whoopadmin.sync.service import budget_for

            budget = budget_for(connection).usage()
        except Exception:  # Redis down: the dashboard still renders
            budget = None
    return {
        "connection": connection,
        "members": setup_service.member_count(connection),
        "cap": member_cap.effective_cap(connection),
        "links": statuses,
        "received": received,
        "rejected": {reason: int(count) for reason, count in rejected.items()},
        "signature_failures": sum(int(rejected.get(r) or 0) for r in SIGNATURE_REASONS),
        "budget": budget,
    }


def failed_jobs(limit: int = 50) -> list[dict[str, Any]]:
    """The newest failed jobs of every queue (ids and what failed, never arguments)."""
    redis = get_redis()
    out = []
    for name in QUEUES:
        registry = FailedJobRegistry(name, connection=redis)
        for job_id in registry.get_job_ids(0, limit - 1):
            job = Job.fetch(job_id, connection=redis) if Job.exists(job_id, redis) else None
            if job is None:
                continue
            latest = job.latest_result()
            error = (latest.exc_string or "").strip().splitlines()[-1:] if latest else []
            out.append(
                {
                    "id": job.id,
                    "queue": name,
                    "function": job.func_name,
                    "ended_at": job.ended_at,
                    "error": (error[0] if error else "")[:300],
                }
            )
    return out[:limit]


def _failed(queue_name: str, job_id: str) -> Job | None:
    redis = get_redis()
    if queue_name not in QUEUES or not Job.exists(job_id, redis):
        return None
    registry = FailedJobRegistry(queue_name, connection=redis)
    return Job.fetch(job_id, connection=redis) if job_id in registry.get_job_ids() else None


def retry_failed(queue_name: str, job_id: str) -> bool:
    """Put a failed job back on its queue."""
    job = _failed(queue_name, job_id)
    if job is None:
        return False
    registry = FailedJobRegistry(
        queue_name,
        connection=get_redis(),
        job_class=job_class_for(current_app._get_current_object()),
    )
    registry.requeue(job.id)
    return True


def delete_failed(queue_name: str, job_id: str) -> bool:
    """Forget a failed job."""
    job = _failed(queue_name, job_id)
    if job is None:
        return False
    job.delete()
    return True


def cron_schedule() -> list[dict[str, Any]]:
    """Every periodic job, with its last and next run when a cron scheduler has run."""
    from rq.cron import CronScheduler

    from whoopadmin.jobs.schedule import periodic_jobs

    seen: dict[str, Any] = {}
    try:
        for scheduler in CronScheduler.all(get_redis()):
            for job in scheduler.get_jobs():
                seen[job.name] = job
    except Exception:  # no scheduler registered yet, or Redis down
        seen = {}
    rows = []
    for periodic in periodic_jobs():
        job = seen.get(periodic.func)
        rows.append(
            {
                "name": periodic.func,
                "queue": periodic.queue,
                "interval": periodic.interval,
                "last": getattr(job, "latest_enqueue_time", None),
                "next": getattr(job, "next_enqueue_time", None),
            }
        )
    return rows


def metrics_text() -> str:
    """Prometheus text exposition of whoopadmin's counters and gauges."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[dict, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            label = ",".join(f'{k}="{str(v).replace(chr(34), "")}"' for k, v in labels.items())
            lines.append(f"{name}{{{label}}} {value}" if label else f"{name} {value}")

    envs = dict(db.session.execute(select(Connection.id, Connection.environment)).all())
    received = db.session.execute(
        select(WebhookEvent.connection_id, WebhookEvent.status, func.count()).group_by(
            WebhookEvent.connection_id, WebhookEvent.status
        )
    ).all()
    metric(
        "whoopadmin_webhooks_received_total",
        "counter",
        "Webhooks accepted, by outcome.",
        [({"environment": envs.get(c, "?"), "status": s}, n) for c, s, n in received],
    )
    rejected = db.session.execute(
        select(
            WebhookRejection.connection_id,
            WebhookRejection.reason,
            func.sum(WebhookRejection.count),
        ).group_by(WebhookRejection.connection_id, WebhookRejection.reason)
    ).all()
    metric(
        "whoopadmin_webhooks_rejected_total",
        "counter",
        "Webhooks refused, by reason.",
        [({"environment": envs.get(c, "?"), "reason": r}, int(n)) for c, r, n in rejected],
    )
    refreshes = db.session.execute(
        select(LinkEvent.kind, func.count())
        .where(LinkEvent.kind.in_(("token_refresh", "token_refresh_failed", "reauth_required")))
        .group_by(LinkEvent.kind)
    ).all()
    metric(
        "whoopadmin_token_refreshes_total",
        "counter",
        "Token refreshes, by outcome.",
        [({"outcome": kind}, n) for kind, n in refreshes],
    )
    from whoopadmin.sync.models import SyncRun

    runs = db.session.execute(
        select(SyncRun.type, SyncRun.outcome, func.count(), func.sum(SyncRun.records)).group_by(
            SyncRun.type, SyncRun.outcome
        )
    ).all()
    metric(
        "whoopadmin_sync_runs_total",
        "counter",
        "Sync jobs per data type, by outcome.",
        [({"type": t, "outcome": o}, n) for t, o, n, _ in runs],
    )
    metric(
        "whoopadmin_synced_records_total",
        "counter",
        "WHOOP records fetched by sync jobs.",
        [({"type": t, "outcome": o}, int(r or 0)) for t, o, _, r in runs],
    )
    durations = db.session.execute(
        select(SyncRun.type, SyncRun.started_at, SyncRun.finished_at)
        .order_by(SyncRun.id.desc())
        .limit(1000)
    ).all()
    seconds: dict[str, list[float]] = {}
    for type_, started, finished in durations:
        seconds.setdefault(type_, []).append(max(0.0, (finished - started).total_seconds()))
    metric(
        "whoopadmin_sync_job_seconds_sum",
        "gauge",
        "Seconds spent by the last 1000 sync jobs, per data type.",
        [({"type": t}, round(sum(v), 3)) for t, v in seconds.items()],
    )
    metric(
        "whoopadmin_sync_job_seconds_count",
        "gauge",
        "Number of sync jobs in whoopadmin_sync_job_seconds_sum, per data type.",
        [({"type": t}, len(v)) for t, v in seconds.items()],
    )
    from whoopadmin.destinations.models import Delivery

    deliveries = db.session.execute(
        select(Delivery.status, func.count(), func.sum(Delivery.attempts)).group_by(Delivery.status)
    ).all()
    metric(
        "whoopadmin_deliveries_total",
        "counter",
        "Deliveries to destinations, by status.",
        [({"status": s}, n) for s, n, _ in deliveries],
    )
    metric(
        "whoopadmin_delivery_attempts_total",
        "counter",
        "Delivery attempts, by delivery status.",
        [({"status": s}, int(a or 0)) for s, _, a in deliveries],
    )
    links = sorted(link_counts().items())
    metric("whoopadmin_links", "gauge", "Links by status.", [({"status": s}, n) for s, n in links])
    from whoopadmin.health.service import metric_families

    for family in metric_families(envs):
        metric(*family)
    depths = queue_depths()
    if depths is not None:
        metric(
            "whoopadmin_queue_jobs",
            "gauge",
            "Jobs waiting, by queue.",
            [({"queue": q}, d["waiting"]) for q, d in depths.items()],
        )
        metric(
            "whoopadmin_queue_failed_jobs",
            "gauge",
            "Failed jobs, by queue.",
            [({"queue": q}, d["failed"]) for q, d in depths.items()],
        )
    return "\n".join(lines) + "\n"
