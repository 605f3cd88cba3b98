"""Background work on RQ: named queues, an app-context job class, workers and the cron."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, current_app
from rq import Queue, Retry, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from whoopadmin.redisconn import get_redis

# Transient failures (WHOOP down, network) are retried on this schedule (seconds).
RETRY = Retry(max=5, interval=[10, 30, 60, 300, 900])

# In priority order: a worker listening on several takes from the first non-empty one.
QUEUES = ("webhooks", "refresh", "sync", "deliveries", "backfill", "domains")


class AppJob(Job):
    """A job that runs inside a fresh app context of the app its worker was built for."""

    app: Flask | None = None

    def perform(self) -> Any:
        """Run the job function in an app context, with its own database session."""
        from whoopadmin.extensions import db

        app = type(self).app
        if app is None:
            raise RuntimeError("AppJob has no app: start workers with `whoopadmin worker`")
        with app.app_context():
            # A forked work-horse must not reuse the parent's database connections (and
            # must not close them either: they still belong to the parent).
            if app.extensions.get("whoopadmin.pid") != os.getpid():
                db.engine.dispose(close=False)
                app.extensions["whoopadmin.pid"] = os.getpid()
            try:
                return super().perform()
            finally:
                db.session.remove()


def job_class_for(app: Flask) -> type[AppJob]:
    """Return the AppJob subclass bound to ``app`` (one per app)."""
    bound = app.extensions.get("whoopadmin.job_class")
    if bound is None:
        bound = app.extensions["whoopadmin.job_class"] = type(
            "BoundAppJob", (AppJob,), {"app": app}
        )
    return bound


def get_queue(name: str, app: Flask | None = None) -> Queue:
    """Return the named queue on the app's Redis."""
    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}; queues are {', '.join(QUEUES)}")
    app = app or current_app._get_current_object()
    return Queue(name, connection=get_redis(app), job_class=job_class_for(app))


def enqueue_once(
    queue: str, func: Callable, *args: Any, job_id: str, app: Flask | None = None, **options: Any
) -> Job:
    """Enqueue ``func(*args)`` unless a job with ``job_id`` is already waiting to run.

    Job arguments are ids, never secrets: they are stored in Redis in plain text.
    """
    q = get_queue(queue, app)
    try:
        existing = Job.fetch(job_id, connection=q.connection)
    except NoSuchJobError:
        existing = None
    if existing is not None and existing.get_status(refresh=False) in (
        JobStatus.QUEUED,
        JobStatus.SCHEDULED,
        JobStatus.DEFERRED,
    ):
        return existing
    return q.enqueue(func, *args, job_id=job_id, **options)


# What jobs run, imported once in the worker so that each forked child starts with it
# (job functions import lazily; a child importing them itself paid for it on every job).
JOB_MODULES = (
    "whoopadmin.setup.jobs",
    "whoopadmin.sync.jobs",
    "whoopadmin.sync.service",
    "whoopadmin.sync.tokens",
    "whoopadmin.webhooks.jobs",
    "whoopadmin.destinations.service",
    "whoopadmin.destinations.jobs",
    "whoopadmin.health.jobs",
    "whoopadmin.erasure.jobs",
    "whoopadmin.retention.jobs",
)


def _preload_job_code() -> None:
    import importlib

    for name in JOB_MODULES:
        importlib.import_module(name)


def make_worker(
    app: Flask, queues: Iterable[str] | None = None, worker_class: type[Worker] = Worker
) -> Worker:
    """Build a worker for ``queues`` (default: all, in priority order) bound to ``app``."""
    names = list(queues or QUEUES)
    unknown = [n for n in names if n not in QUEUES]
    if unknown:
        raise ValueError(f"unknown queue {', '.join(unknown)}; queues are {', '.join(QUEUES)}")
    _preload_job_code()
    connection = get_redis(app)
    job_class = job_class_for(app)
    return worker_class(
        [Queue(n, connection=connection, job_class=job_class) for n in names],
        connection=connection,
        job_class=job_class,
    )
