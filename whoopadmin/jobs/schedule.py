"""The periodic work ``whoopadmin cron`` registers with RQ's cron scheduler."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from rq.cron import CronScheduler

from whoopadmin.redisconn import get_redis


@dataclass(frozen=True)
class Periodic:
    """One periodic job: a function taking no arguments, its queue and its interval."""

    func: str
    queue: str
    interval: int


def periodic_jobs() -> list[Periodic]:
    """Return every periodic job of every feature."""
    return [
        # Domain checks are due on their own back-off schedule; this finds the due ones.
        Periodic("whoopadmin.setup.jobs.check_due_domains", "domains", 60),
        # Tokens expiring within 15 minutes are refreshed ahead of time.
        Periodic("whoopadmin.sync.jobs.refresh_due", "refresh", 300),
        # Webhooks stored while Redis was down (or never processed) are queued again.
        Periodic("whoopadmin.webhooks.jobs.sweep_events", "webhooks", 60),
        # Each hour a 24th of the links re-reads its last days: webhooks can be missed.
        Periodic("whoopadmin.sync.jobs.reconcile_due", "sync", 3600),
        Periodic("whoopadmin.sync.jobs.cleanup_expired", "sync", 3600),
        # Staff sessions past their idle or absolute limit (each sign-in also sweeps its own).
        Periodic("whoopadmin.sessions.service.purge_expired", "sync", 3600),
        # Failed deliveries are retried on their back-off; lost delivery jobs are re-queued.
        Periodic("whoopadmin.destinations.service.retry_due", "deliveries", 60),
        # Recoveries whose job died are resumed; ended secret overlaps are dropped.
        Periodic("whoopadmin.destinations.jobs.resume_recoveries", "deliveries", 60),
        Periodic("whoopadmin.destinations.jobs.end_expired_overlaps", "deliveries", 60),
        # Destinations that have failed for days are disabled (their events are held).
        Periodic("whoopadmin.destinations.jobs.disable_failing", "deliveries", 600),
        # Connection health: learn webhook rates, record signals, warn on changes.
        Periodic("whoopadmin.health.jobs.evaluate_all", "sync", 60),
        # Erasures whose grace period is over are carried out; retention removes old rows.
        Periodic("whoopadmin.erasure.jobs.erase_due", "sync", 300),
        Periodic("whoopadmin.retention.jobs.enforce_retention", "sync", 3600),
    ]


def build_cron(app: Flask) -> CronScheduler:
    """Return a cron scheduler with every periodic job registered."""
    import importlib

    scheduler = CronScheduler(connection=get_redis(app), name=f"whoopadmin-cron-{id(app)}")
    for job in periodic_jobs():
        module, _, name = job.func.rpartition(".")
        func = getattr(importlib.import_module(module), name)
        scheduler.register(func, job.queue, interval=job.interval, name=job.func)
    return scheduler
