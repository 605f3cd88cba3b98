"""PostgreSQL restarted under load: requests fail cleanly with 503, nothing acknowledged is
lost, and the service resumes by itself.

Injected: a PostgreSQL server of the test's own, killed (immediate shutdown, as in a crash)
while four clients keep posting signed webhooks over real HTTP, held down, then started
again. The app keeps running throughout; nobody restarts or pokes it.
"""

from __future__ import annotations

import contextlib
import glob
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from tests.conftest import run_jobs
from tests.factories import make_connection, make_link
from whoopadmin.extensions import db
from whoopadmin.webhooks.jobs import sweep_events
from whoopadmin.webhooks.models import WebhookEvent
from whoopadmin.webhooks.signatures import whoop_signature

SECRET = "sk-restart-client-secret-77"
CLIENT_ID = "restart-client"
USER = 515151
SENDERS = 4


def _pg_bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=os.path.getmtime)
    if found:
        return os.path.dirname(found[-1])
    pg_ctl = shutil.which("pg_ctl")
    return os.path.dirname(pg_ctl) if pg_ctl else None


class PostgresProcess:
    """A throwaway PostgreSQL cluster on a free loopback port, trust auth."""

    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.root = tempfile.mkdtemp(prefix="whoopadmin-pg-", dir="/tmp")
        self.data = os.path.join(self.root, "data")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        # PostgreSQL refuses to run as root: run it as the postgres user then.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.as_user, os.path.join(self.bindir, tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = os.path.join(self.root, "log")
        self._run("pg_ctl", "-D", self.data, "-l", log, "-o", options, "-w", "-t", "60", "start")

    def kill(self) -> None:
        """Immediate shutdown: every connection drops at once, as in a crash."""
        self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def own_postgres():
    bindir = _pg_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL's server binaries are missing (apt-get install postgresql)")
        pytest.skip("PostgreSQL's server binaries are not installed")
    server = PostgresProcess(bindir)
    try:
        server.start()
        yield server
    finally:
        server.remove()


class Senders:
    """Clients posting signed ``sleep.deleted`` webhooks, each recording every answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.answers: list[tuple[float, str, int, str]] = []  # (time, trace id, status, body)
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(SENDERS)]

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stop.is_set():
            trace = uuid.uuid4().hex
            body = json.dumps(
                {
                    "user_id": USER,
                    "id": str(uuid.uuid4()),
                    "type": "sleep.deleted",
                    "trace_id": trace,
                }
            ).encode()
            stamp = str(int(time.time() * 1000))
            headers = {
                "Content-Type": "application/json",
                "X-WHOOP-Signature-Timestamp": stamp,
                "X-WHOOP-Signature": whoop_signature(SECRET, stamp, body),
            }
            try:
                conn.request("POST", f"/hooks/whoop/push/{CLIENT_ID}", body, headers)
                response = conn.getresponse()
                text = response.read().decode()
            except (OSError, http.client.HTTPException) as exc:
                with self.lock:
                    self.errors.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                continue
            with self.lock:
                self.answers.append((time.monotonic(), trace, response.status, text))
        conn.close()

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def count(self, status: int) -> int:
        with self.lock:
            return sum(1 for answer in self.answers if answer[2] == status)


def _wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_database_restart_under_load(own_postgres, make_app):
    app = make_app(DATABASE_URL=own_postgres.url)
    with app.app_context():
        db.create_all()
        connection = make_connection(client_id=CLIENT_ID, client_secret=SECRET)
        make_link(connection, whoop_user_id=USER)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    senders = Senders(server.server_port)
    probe = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)

    def ready() -> int:
        probe.request("GET", "/readyz")
        response = probe.getresponse()
        response.read()
        return response.status

    try:
        senders.start()
        assert _wait_for(lambda: senders.count(200) >= 40, 60), senders.answers[-5:]
        own_postgres.kill()
        killed_at = time.monotonic()
        # While the database is down every webhook gets a clean 503 (WHOOP retries it).
        assert _wait_for(lambda: senders.count(503) >= 20, 60)
        assert ready() == 503
        own_postgres.start()
        restarted_at = time.monotonic()
        # Nobody touches the app: it reconnects by itself.
        assert _wait_for(
            lambda: sum(1 for a in senders.answers if a[0] > restarted_at and a[2] == 200) >= 40,
            60,
        )
        assert ready() == 200
    finally:
        senders.finish()
        probe.close()
        server.shutdown()

    statuses = {answer[2] for answer in senders.answers}
    assert statuses <= {200, 503}, statuses  # never a 500, never a hang-up
    assert senders.errors == []
    for _, _, status, text in senders.answers:
        expected = "accepted" if status == 200 else "not reachable"
        assert expected in text, text  # 503s carry the clear message, not a trace
    acknowledged = {a[1] for a in senders.answers if a[2] == 200}
    refused = {a[1] for a in senders.answers if a[2] == 503}
    assert any(a[2] == 503 and a[0] > killed_at for a in senders.answers)
    # After the restart the 503s stop: the last answers are all 2xx.
    assert all(a[2] == 200 for a in senders.answers[-SENDERS * 5 :])

    with app.app_context():
        rows = db.session.execute(sa.select(WebhookEvent.trace_id)).scalars().all()
        # Everything acknowledged is stored, once. A refused webhook may still have been
        # stored (the commit landed, the answer did not): WHOOP's retry is then a duplicate.
        assert acknowledged <= set(rows)
        assert len(rows) == len(set(rows))
        assert set(rows) <= acknowledged | refused
        sweep_events(min_age_seconds=0)  # anything stored but never queued
    run_jobs(app, ("webhooks",))
    with app.app_context():
        processed = dict(
            db.session.execute(sa.select(WebhookEvent.trace_id, WebhookEvent.attempts)).all()
        )
        done = set(
            db.session.scalars(
                sa.select(WebhookEvent.trace_id).where(WebhookEvent.status == "processed")
            )
        )
        db.session.remove()
        db.engine.dispose()
    print(
        f"sent {len(senders.answers)}: {len(acknowledged)} acknowledged, {len(refused)} refused "
        f"with 503; stored {len(rows)}; processed {len(done)}"
    )
    assert done == set(rows)  # every stored webhook processed ...
    assert set(processed.values()) == {1}  # ... exactly once
