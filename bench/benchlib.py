"""What every benchmark here shares: the services' arguments, free ports, a gunicorn server."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def add_service_arguments(parser: argparse.ArgumentParser, redis_db: int) -> None:
    """--database-url and --redis-url; each benchmark flushes its own Redis database."""
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "WHOOPADMIN_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
        help="a PostgreSQL server: a fresh database is created there and dropped",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("WHOOPADMIN_BENCH_REDIS_URL", f"redis://127.0.0.1:6379/{redis_db}"),
        help="a Redis database of the benchmark's own (it is flushed)",
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings_env(settings: dict) -> dict:
    """This process's environment plus ``settings`` as WHOOPADMIN_* variables."""
    return dict(os.environ, **{f"WHOOPADMIN_{k}": str(v) for k, v in settings.items()})


def start_gunicorn(settings: dict, workers: int, threads: int) -> tuple[subprocess.Popen, int]:
    """gunicorn serving whoopadmin with ``settings`` on a free port, once it answers."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "wsgi:app",
        ],
        cwd=ROOT,
        env=settings_env(settings),
    )
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
            return server, port
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError("gunicorn did not answer /healthz within 30 s")


def app_settings(database_url: str, redis_url: str, workdir: Path, **extra: str) -> dict:
    """whoopadmin's settings for a benchmark run (fresh keys; ``extra`` wins)."""
    from whoopadmin.crypto import generate_key

    return {
        "SECRET_KEY": "bench-secret-key",
        "ENCRYPTION_KEYS": generate_key(),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "INSTANCE_PATH": str(workdir / "instance"),
        **extra,
    }


def add_connection(client_id: str, client_secret: str, **extra):
    """The benchmark's connection on whoop.bench.test (in an app context; flushed)."""
    from whoopadmin.extensions import db
    from whoopadmin.setup.models import Connection

    values = {
        "environment": "bench",
        "display_name": "Bench",
        "hostname": "whoop.bench.test",
        "allowed_origins": [],
        "app_schemes": [],
        **extra,
    }
    connection = Connection(client_id=client_id, **values)
    connection.client_secret = client_secret
    db.session.add(connection)
    db.session.flush()
    return connection


def stop_processes(processes: list[subprocess.Popen], grace: float = 30) -> None:
    """Ask each process to stop; kill what has not stopped after ``grace`` seconds."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()


def child_pids(pid: int) -> set[int]:
    """The process ids of ``pid``'s children (gunicorn's workers), from Linux ``/proc``."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(child) for child in children.split()}


def cpu_seconds(pids: set[int]) -> float:
    """User + system CPU time of these processes so far, from Linux ``/proc`` (gone: 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")
