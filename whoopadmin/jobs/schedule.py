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
