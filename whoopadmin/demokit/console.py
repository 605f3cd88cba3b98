"""The demo's console: the banner, then one line per notable event; logs go to files.

Every log line (requests, jobs, the cron) goes to ``<instance>/logs/``; ``--verbose``
shows them on the console too. Without it the console shows only what a newcomer wants
to see happen: a link connected, a webhook processed, a DNS status changed, a job
failed, a delivery received. Those are read from the database and Redis every second by
:class:`EventWatcher`, so they are reported whichever process did the work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import click
from flask import Flask
from flask.logging import default_handler
from sqlalchemy import func, select

LOG_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"


class Console:
    """Prints event lines, one at a time, each with the time of day."""

    def __init__(self, echo: Callable[[str], None] = click.echo) -> None:
        self._echo = echo
        self._lock = threading.Lock()

    def line(self, text: str = "") -> None:
        """Print a plain line."""
        with self._lock:
            self._echo(text)

    def event(self, text: str) -> None:
        """Print a notable event."""
        self.line(f"{time.strftime('%H:%M:%S')}  {text}")


def route_logs(app: Flask, log_dir: Path, verbose: bool) -> Path:
    """Send this process's log lines to ``log_dir/web.log`` (and stderr with ``verbose``)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / "web.log"
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(file_handler)
    if verbose:
        stream = logging.StreamHandler()
        stream.setFormatter(logging.Formatter("[web] " + LOG_FORMAT))
        root.addHandler(stream)
    root.setLevel(logging.INFO)
    # Flask's and werkzeug's own stderr handlers would bypass the file.
    app.logger.removeHandler(default_handler)
    for name in ("werkzeug", "alembic", "flask_migrate"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
    return path


class LogTail:
    """With ``--verbose``: echo the lines other processes append to their log files."""

    def __init__(self, files: dict[str, Path], console: Console, interval: float = 0.3) -> None:
        self.files = files
        self.console = console
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-log-tail", daemon=True)

    def start(self) -> LogTail:
        """Follow the files from their current end."""
        self._thread.start()
        return self

    def _run(self) -> None:
        offsets = {name: _size(path) for name, path in self.files.items()}
        while not self._stop.wait(self.interval):
            for name, path in self.files.items():
                offsets[name] = self._echo_new(name, path, offsets[name])

    def _echo_new(self, name: str, path: Path, offset: int) -> int:
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
        except OSError:
            return offset
        complete = chunk.rfind(b"\n") + 1  # a line still being written waits for the next round
        for line in chunk[:complete].decode("utf-8", "replace").splitlines():
            self.console.line(f"[{name}] {line}")
        return offset + complete

    def stop(self) -> None:
        """Stop following."""
        self._stop.set()
        self._thread.join(timeout=2)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class EventWatcher:
    """Reports new notable events from the database and Redis, once a second."""

    def __init__(self, app: Flask, console: Console, interval: float = 1.0) -> None:
        self.app = app
        self.console = console
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-events", daemon=True)
        self._link_event = 0
        self._webhook_done_at = None
        self._webhooks_seen: set[int] = set()
        self._statuses: dict[int, str] = {}
        self._failed_jobs: set[str] = set()

    def start(self) -> EventWatcher:
        """Note where things stand (nothing old is reported), then watch."""
        self.poll(report=False)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception as exc:  # a locked database or a Redis hiccup: next second
                logging.getLogger(__name__).warning("event watcher: %s", type(exc).__name__)

    def poll(self, report: bool = True) -> list[str]:
        """Find what happened since the last poll; print it (unless ``report`` is false)."""
        from whoopadmin.extensions import db

        with self.app.app_context():
            try:
                lines = self._links() + self._webhooks() + self._dns() + self._jobs()
            finally:
                db.session.remove()
        if report:
            for line in lines:
                self.console.event(line)
        return lines

    def _links(self) -> list[str]:
        from whoopadmin.connect.models import Link, LinkEvent
        from whoopadmin.extensions import db

        rows = db.session.execute(
            select(LinkEvent.id, LinkEvent.kind, Link.whoop_user_id, Link.reference_id)
            .join(Link, Link.id == LinkEvent.link_id)
            .where(LinkEvent.id > self._link_event, LinkEvent.kind.in_(("connect", "user_reauth")))
            .order_by(LinkEvent.id)
        ).all()
        lines = []
        for event_id, kind, whoop_user_id, reference_id in rows:
            self._link_event = max(self._link_event, event_id)
            verb = "reconnected" if kind == "user_reauth" else "connected"
            lines.append(f"link {verb}: WHOOP member {whoop_user_id} (reference {reference_id})")
        if not rows:
            latest = db.session.scalar(select(func.max(LinkEvent.id)))
            self._link_event = max(self._link_event, latest or 0)
        return lines

    def _webhooks(self) -> list[str]:
        from whoopadmin.extensions import db
        from whoopadmin.webhooks.models import WebhookEvent

        query = select(
            WebhookEvent.id,
            WebhookEvent.type,
            WebhookEvent.whoop_user_id,
            WebhookEvent.status,
            WebhookEvent.result,
            WebhookEvent.processed_at,
        ).where(WebhookEvent.processed_at.is_not(None))
        if self._webhook_done_at is not None:
            query = query.where(WebhookEvent.processed_at >= self._webhook_done_at)
        lines = []
        for event_id, kind, member, status, result, done_at in db.session.execute(
            query.order_by(WebhookEvent.processed_at, WebhookEvent.id)
        ):
            if self._webhook_done_at is None or done_at > self._webhook_done_at:
                self._webhook_done_at = done_at
                self._webhooks_seen = set()
            if event_id in self._webhooks_seen:
                continue
            self._webhooks_seen.add(event_id)
            who = f" for WHOOP member {member}" if member else ""
            lines.append(f"webhook {status}: {kind}{who} ({(result or '').strip()[:80]})")
        return lines

    def _dns(self) -> list[str]:
        from whoopadmin.extensions import db
        from whoopadmin.setup.models import Connection

        lines = []
        for cid, hostname, status in db.session.execute(
            select(Connection.id, Connection.hostname, Connection.status)
        ):
            before = self._statuses.get(cid)
            self._statuses[cid] = status
            if before is not None and before != status and hostname:
                lines.append(f"DNS of {hostname}: {status.replace('_', ' ')}")
        return lines

    def _jobs(self) -> list[str]:
        from whoopadmin.ops.service import failed_jobs

        lines = []
        for job in failed_jobs(limit=20):
            if job["id"] in self._failed_jobs:
                continue
            self._failed_jobs.add(job["id"])
            lines.append(
                f"job failed: {job['function']} on {job['queue']}: {job['error'] or 'no message'}"
                " (Jobs page: retry or delete)"
            )
        return lines
