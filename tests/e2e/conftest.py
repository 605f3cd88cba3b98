"""End-to-end fixtures: the whole product served on loopback, driven by Debian's Chromium.

One session serves the web app (werkzeug, threaded), the WHOOP sandbox and an authoritative
DNS server for ``demo.localhost`` — the same wiring as ``whoopadmin demo`` — on 127.0.0.1.
Background jobs run in this process when a test asks (``run_jobs``), not in child processes.
Chromium resolves ``*.localhost`` to 127.0.0.1 itself, and every request it makes to any
other host is aborted and fails the test: nothing leaves 127.0.0.0/8.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from jinja2 import StrictUndefined
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.conftest import Wizard, flush_redis, fresh_pg_database, run_jobs
from tests.factories import PASSWORDS, make_totp, make_user
from tests.helpers import AuthActions, reset_schema

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # the browser fixture skips (or fails under CI) with the reason
    sync_playwright = None

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # Even with the flags above Chromium looks up Google's hosts (autofill, accounts,
    # component updates) through the system resolver: answer every name but loopback's
    # "not found" inside Chromium, so not even a DNS query leaves the machine.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost, "
    "EXCLUDE *.localhost",
]
# Playwright's auto-waiting (actions and expect) gives up after this long: a loaded CI
# machine is slow.
TIMEOUT_MS = 15_000

ZONE = "demo.localhost"
PRODUCTION_HOST = f"whoop.{ZONE}"
STAGING_HOST = f"whoop-staging.{ZONE}"
OPERATOR = ("operator@example.com", PASSWORDS["operator"])
SUPPORT = ("support@example.com", PASSWORDS["support"])
RESULTS = "test-results"


class _QuietHandler(WSGIRequestHandler):
    """Log no request lines (they carry connect tokens and OAuth states)."""

    def log_request(self, *args, **kwargs) -> None:
        pass


@dataclass
class Live:
    """Everything the end-to-end tests talk to, served on loopback."""

    app: object
    port: int
    sandbox: object
    dns: object
    whoop_apps: dict = field(default_factory=dict)
    # Authenticator secrets by e-mail, and the last time step whose code each one used:
    # a code works once, so every sign-in needs a later step than the one before.
    totp_secrets: dict = field(default_factory=dict)
    used_steps: dict = field(default_factory=dict)

    def totp_code(self, email: str) -> str:
        """A code for ``email``'s authenticator that no sign-in has used yet (this waits
        for the next 30-second step when the current and the next one are both used)."""
        import pyotp

        totp = pyotp.TOTP(self.totp_secrets[email])
        while True:
            step = int(time.time()) // totp.interval
            for candidate in (step, step + 1):  # the next step's code is accepted too
                if candidate > self.used_steps.get(email, -1):
                    self.used_steps[email] = candidate
                    return totp.generate_otp(candidate)
            time.sleep(0.5)

    @property
    def admin(self) -> str:
        """The admin pages' base URL."""
        return f"http://127.0.0.1:{self.port}"

    def public(self, hostname: str) -> str:
        """A connection's public base URL (connect pages, OAuth callback)."""
        return f"http://{hostname}:{self.port}"

    def whoop_app(self, hostname: str):
        """The sandbox's WHOOP app for a connection on ``hostname`` (made once)."""
        if hostname not in self.whoop_apps:
            client_id = f"e2e-{hostname.split('.')[0]}"
            self.whoop_apps[hostname] = self.sandbox.state.create_app(
                client_id=client_id,
                name=f"whoopadmin e2e ({hostname})",
                redirect_uris=[f"{self.public(hostname)}/auth/whoop/oauth2"],
                # WHOOP would post to the public URL; the sandbox posts by client id on
                # loopback, as in the demo.
                webhook_urls=[f"{self.admin}/hooks/whoop/push/{client_id}"],
            )
        return self.whoop_apps[hostname]

    def publish_zone(self) -> None:
        """Serve the records every demo.localhost connection asks for (the demo's publish
        button does this per connection; test_demo.py drives the real button)."""
        from whoopadmin.demo import demo_zone

        self.dns.load_zone(demo_zone(self.app, publish_all=True), origin=ZONE)

    def run_jobs(self, *queues: str) -> None:
        """Run the queued jobs in this process (a burst worker)."""
        run_jobs(self.app, queues or ("domains",))

    def connect_url(self, environment: str, reference_id: str, **fields) -> str:
        """Create a connect session the way the API does; return its URL."""
        from whoopadmin.connect import service
        from whoopadmin.extensions import db
        from whoopadmin.setup.models import Connection

        with self.app.app_context():
            c = db.session.scalar(
                sa.select(Connection).where(Connection.environment == environment)
            )
            _, token = service.create_session(
                c, reference_id=reference_id, created_by="e2e", **fields
            )
            url = service.connect_url(c, token)
            db.session.remove()
        return url

    def connection(self, environment: str):
        from whoopadmin.extensions import db
        from whoopadmin.setup.models import Connection

        with self.app.app_context():
            c = db.session.scalar(
                sa.select(Connection).where(Connection.environment == environment)
            )
            if c is not None:
                db.session.expunge(c)
            return c


@pytest.fixture(scope="session")
def e2e_database_url(tmp_path_factory):
    """Its own database: SQLite in tmp, or a fresh PostgreSQL database dropped at the end."""
    pg = os.environ.get("WHOOPADMIN_TEST_DATABASE_URL")
    if not pg:
        yield f"sqlite:///{tmp_path_factory.mktemp('e2e-db') / 'e2e.sqlite3'}"
        return
    url, drop = fresh_pg_database(pg)
    try:
        yield url
    finally:
        drop()


def _closed_when_done(body):
    """Yield a response body and close it as soon as it is sent (or abandoned).

    Werkzeug's development server closes a body only after draining the request socket,
    and skips that when a browser has already reset the connection (a navigation away):
    a static file then stays open until the garbage collector finds it, mid-way through
    whatever test runs next. Closing here, when the body is exhausted, keeps files closed.
    """
    try:
        yield from body
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


@pytest.fixture(scope="session")
def live(tmp_path_factory, e2e_database_url, redis_url, encryption_key):
    """The web app, the WHOOP sandbox and the demo.localhost DNS server, on 127.0.0.1."""
    from whoopadmin import create_app
    from whoopadmin.domains import DNSServer
    from whoopadmin.extensions import db
    from whoopadmin.sandbox.server import SandboxServer

    # Bind first (port 0: a free one, no race), so the app's public URLs can name the port.
    wsgi = {}
    server = make_server(
        "127.0.0.1",
        0,
        lambda environ, start_response: _closed_when_done(wsgi["app"](environ, start_response)),
        threaded=True,
        request_handler=_QuietHandler,
    )
    server.daemon_threads = True
    port = server.server_port
    with contextlib.ExitStack() as stack:
        stack.callback(server.server_close)
        dns = DNSServer().start()
        stack.callback(dns.stop)
        sandbox = SandboxServer(seed=11, webhook_retry_delays=(0.2, 0.5, 1, 2, 4)).start()
        stack.callback(sandbox.stop)
        flush_redis(redis_url)
        app = create_app(
            {
                "TESTING": True,
                "INSTANCE_PATH": str(tmp_path_factory.mktemp("e2e-instance")),
                "SECRET_KEY": "e2e-secret-key",
                "ENCRYPTION_KEYS": encryption_key,
                "DATABASE_URL": e2e_database_url,
                "REDIS_URL": redis_url,
                # Operators sign in with a second factor, as in production.
                "REQUIRE_MFA": True,
                "PUBLIC_SCHEME": "http",
                "PUBLIC_PORT": port,
                "CNAME_TARGET": f"edge.{ZONE}",
                "VALIDATION_DOMAIN": f"acme-dns.{ZONE}",
                "DNS_NAMESERVERS": f"127.0.0.1:{dns.port}",
                "DNS_TIMEOUT": 1.5,
                "WHOOP_AUTH_URL": sandbox.auth_url,
                "WHOOP_TOKEN_URL": sandbox.token_url,
                "WHOOP_API_BASE": sandbox.api_base,
                "WHOOP_TIMEOUT": 5,
                # Several sign-ins from 127.0.0.1 within a minute are the suite, not an attack.
                "LOGIN_RATE_LIMIT": "100 per minute",
            }
        )
        stack.callback(_close_app, app)
        app.jinja_env.undefined = StrictUndefined
        reset_schema(app)
        with app.app_context():
            secret = make_totp(make_user("operator", OPERATOR[0]))
            make_user("support", SUPPORT[0])
            db.session.remove()
        live = Live(app=app, port=port, sandbox=sandbox, dns=dns)
        live.totp_secrets[OPERATOR[0]] = secret
        live.publish_zone()

        wsgi["app"] = app
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.daemon = True
        thread.start()
        stack.callback(thread.join, 5)
        stack.callback(server.shutdown)
        yield live


def _close_app(app) -> None:
    from whoopadmin.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    client = app.extensions.get("whoopadmin.redis")
    if client is not None:
        client.close()


@pytest.fixture(scope="session")
def staging(live):
    """A live ``staging`` connection on whoop-staging.demo.localhost, set up the fast way.

    test_wizard.py walks an operator through the wizard in the browser (``production`` on
    whoop.demo.localhost); the other tests only need a connection that is live, so they get
    one through the Flask test client (tests/conftest.py's ``Wizard`` steps).
    """
    client = live.app.test_client()
    auth = AuthActions(client)
    assert auth.login(*OPERATOR).headers["Location"] == "/login/verify"
    assert auth.verify(live.totp_code(OPERATOR[0])).headers["Location"] == "/"
    wizard = Wizard(live.app, client, live.sandbox, live.dns)
    whoop_app = live.whoop_app(STAGING_HOST)
    wizard.create("staging", "Acme Health")
    wizard.credentials("staging", whoop_app.client_id, whoop_app.client_secret)
    wizard.verify("staging")
    wizard.subdomain("staging", STAGING_HOST)
    live.publish_zone()
    live.run_jobs("domains")
    wizard.post("/setup/staging/whoop")
    response = wizard.post("/setup/staging/go-live")
    assert response.headers["Location"] == "/setup/staging/go-live", response.data
    connection = live.connection("staging")
    assert connection.live_at is not None and connection.status in ("verified", "active")
    return connection


# --------------------------------------------------------------------------- the browser


def _browser_missing() -> str | None:
    if sync_playwright is None:
        return "the playwright package is not installed (pip install playwright)"
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="session", autouse=True)
def _browser_installed():
    """Before anything is started: skip without Chromium or Playwright, but fail under CI."""
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: .ci/run installs it", pytrace=False)
        pytest.skip(missing)


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, for the whole run."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures know whether it failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def new_page(browser, request):
    """``new_page()`` opens a page in a fresh browser context (its own cookies and language).

    Requests to anything but loopback are aborted and fail the test. When the test fails,
    every open page is saved as ``test-results/<test>.png`` (the last one opened) and
    ``test-results/<test>-<n>.png`` (the others).
    """
    contexts, pages, escaped = [], [], []

    def block_outside(route) -> None:
        if _loopback(route.request.url):
            route.continue_()
        else:
            escaped.append(route.request.url)
            route.abort()

    def factory(**options):
        """``options`` go to the browser context (e.g. ``locale="de-DE"``)."""
        context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
        context.set_default_timeout(TIMEOUT_MS)
        context.route("**/*", block_outside)
        contexts.append(context)
        page = context.new_page()
        pages.append(page)
        return page

    yield factory
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and pages:
        out = Path(request.config.rootpath) / RESULTS
        out.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        for n, page in enumerate(reversed(pages)):
            path = out / (f"{name}.png" if n == 0 else f"{name}-{len(pages) - n}.png")
            try:
                page.screenshot(path=str(path), full_page=True)
            except Exception as exc:  # a crashed page must not hide the test's own failure
                print(f"screenshot {path} failed: {exc}")
    for context in contexts:
        context.close()
    assert not escaped, f"the browser tried to leave loopback: {escaped}"


@pytest.fixture
def page(new_page):
    """One page in a fresh context."""
    return new_page()


def sign_in(page, live: Live, account: tuple[str, str]) -> None:
    """Sign in through the real form, then with an authenticator code if the account has one."""
    from playwright.sync_api import expect

    page.goto(f"{live.admin}/login")
    page.get_by_label("E-mail").fill(account[0])
    page.get_by_label("Password").fill(account[1])
    page.get_by_role("button", name="Sign in").click()
    if account[0] in live.totp_secrets:
        enter_code(page, live, account[0])
    expect(page.get_by_test_id("whoami")).to_contain_text(account[0])


def enter_code(page, live: Live, email: str) -> None:
    """The second step of signing in: the authenticator's code, computed with pyotp."""
    from playwright.sync_api import expect

    expect(page.get_by_role("heading", name="Authentication code")).to_be_visible()
    page.get_by_label("Authentication code").fill(live.totp_code(email))
    page.get_by_role("button", name="Verify").click()


def save_screenshot(page, name: str, down_to=None) -> None:
    """Save a README screenshot: test-results/screenshots/<name>.png on every run, and
    docs/screenshots/<name>.png when WHOOPADMIN_UPDATE_SCREENSHOTS=1 (so a test run does
    not rewrite tracked files). ``down_to``: a locator the picture ends below."""
    root = Path(__file__).resolve().parents[2]
    targets = [root / RESULTS / "screenshots"]
    if os.environ.get("WHOOPADMIN_UPDATE_SCREENSHOTS") == "1":
        targets.append(root / "docs" / "screenshots")
    options = {"full_page": True}
    if down_to is not None:
        box = down_to.bounding_box()
        width = page.viewport_size["width"]
        options["clip"] = {"x": 0, "y": 0, "width": width, "height": box["y"] + box["height"] + 24}
    for target in targets:
        target.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target / f"{name}.png"), **options)
