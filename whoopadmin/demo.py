"""``whoopadmin demo``: the whole product on the embedded defaults, in one command.

One process serves the web app, the WHOOP sandbox (a local fake WHOOP whose state is kept
in the instance folder), an authoritative DNS server for ``demo.localhost`` and a demo
receiver of deliveries; a worker and the cron run as child processes on the same embedded
Redis and database. The DNS server plays the operator's DNS provider: a typed name has no
records until the operator publishes them from the wizard, and a few prepared names carry
the classic mistakes (``whoopadmin/demokit/dnszone.py``). The wizard's checks query it for
real: nothing is skipped.

Every part listens on a port of its own option; logs go to ``<instance>/logs/``; the
console shows the banner and then the notable events; Ctrl-C (or SIGTERM) stops every part.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import click
from flask import Flask
from flask_migrate import upgrade
from werkzeug.serving import WSGIRequestHandler

from whoopadmin.auth import service
from whoopadmin.demokit.dnszone import CNAME_TARGET, PREPARED, VALIDATION_DOMAIN, ZONE
from whoopadmin.sandbox.server import serve_on

DEMO_ACCOUNTS = (
    ("operator@example.com", "operator", "demo-operator-pass"),
    ("support@example.com", "support", "demo-support-pass"),
)
HOSTNAME = f"whoop.{ZONE}"
CLIENT_ID = "whoopadmin-demo"
CLIENT_SECRET = "demo-client-secret-change-me"
SANDBOX_STATE = "sandbox-state.json"
# A child told to stop gets this long (in all) before it is killed.
STOP_GRACE_SECONDS = 8.0

T = TypeVar("T")


class RedactingRequestHandler(WSGIRequestHandler):
    """Request log lines without query strings or connect tokens (codes, states, tokens)."""

    def log_request(self, code="-", size="-") -> None:
        path = self.path.split("?", 1)[0]
        if path.startswith("/set-password/"):
            path = "/set-password/<token>"
        if path.startswith("/connect/"):
            path = "/connect/<token>" + ("/start" if path.endswith("/start") else "")
        original, self.path = self.path, path  # werkzeug logs self.path
        try:
            super().log_request(code, size)
        finally:
            self.path = original


def seed_accounts() -> None:
    """Create the demo staff accounts once; a second run reuses them."""
    for email, role, password in DEMO_ACCOUNTS:
        if service.find_by_email(email) is None:
            service.create_user("demo", email, role, password)


def demo_zone(app: Flask, publish_all: bool = False) -> str:
    """The demo zone now: prepared mistakes plus what operators published.

    ``publish_all`` serves every connection's records without the button (the end-to-end
    tests' shortcut for "the operator added the records").
    """
    from whoopadmin.demokit.service import zone_text
    from whoopadmin.extensions import db

    with app.app_context():
        try:
            return zone_text(publish_all)
        finally:
            db.session.remove()


@dataclass(frozen=True)
class DemoPorts:
    """The port of every part (0: any free port)."""

    web: int = 5000
    sandbox: int = 5055
    dns: int = 5053
    receiver: int = 5056

    # Each part's option and what it serves, for messages.
    OPTIONS = {
        "web": ("--port", "admin pages"),
        "sandbox": ("--sandbox-port", "WHOOP sandbox"),
        "dns": ("--dns-port", "demo DNS"),
        "receiver": ("--receiver-port", "demo receiver"),
    }

    def check_distinct(self) -> None:
        """Refuse two parts on one port, naming both options."""
        seen: dict[int, str] = {}
        for part, (option, _) in self.OPTIONS.items():
            port = getattr(self, part)
            if port and port in seen:
                raise click.UsageError(
                    f"{seen[port]} and {option} are both {port}: give each part its own port."
                )
            seen[port] = option


def listen(part: str, host: str, port: int, bind: Callable[[], T]) -> T:
    """Run ``bind`` (which opens the part's port); an error names the option to change."""
    option, what = DemoPorts.OPTIONS[part]
    try:
        return bind()
    except OSError as exc:
        if exc.errno == 98:  # EADDRINUSE
            raise click.ClickException(
                f"Port {port} on {host} is already in use, so the {what} cannot start. Stop "
                f"what uses it, or choose another port: {option} <port> ({option} 0 picks "
                "any free one)."
            ) from None
        if exc.errno == 13:  # EACCES: ports below 1024 need privileges
            raise click.ClickException(
                f"Not allowed to listen on port {port} (the {what}): use a port above 1023 "
                f"with {option}."
            ) from None
        raise click.ClickException(
            f"Cannot listen on {host}:{port} for the {what} ({exc.strerror or exc}). Check "
            f"--host, or choose another port with {option}."
        ) from None


def _ensure_sandbox_app(state, port: int):
    """The demo WHOOP app, registered once and kept up to date with this run's port."""
    from whoopadmin.sandbox.state import SandboxError

    redirect = f"http://{HOSTNAME}:{port}/auth/whoop/oauth2"
    # WHOOP would post to the public URL; the sandbox posts by client id on loopback.
    webhook = f"http://127.0.0.1:{port}/hooks/whoop/push/{CLIENT_ID}"
    with state.lock:
        try:
            app = state.get_app(CLIENT_ID)
        except SandboxError:
            return state.create_app(
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                name="whoopadmin demo",
                redirect_uris=[redirect],
                webhook_urls=[webhook],
            )
        app.webhook_urls = [webhook]
        if redirect not in app.redirect_uris:
            app.redirect_uris.append(redirect)
        return app


def _register_redirects(app: Flask, state, port: int) -> None:
    """Register every demo connection's callback URL at the sandbox (the operator's step 5)."""
    from sqlalchemy import select

    from whoopadmin.demokit.dnszone import in_zone
    from whoopadmin.extensions import db
    from whoopadmin.setup.models import Connection

    with app.app_context():
        try:
            hostnames = db.session.scalars(select(Connection.hostname)).all()
        finally:
            db.session.remove()
    uris = [f"http://{h}:{port}/auth/whoop/oauth2" for h in hostnames if in_zone(h)]
    with state.lock:
        whoop_app = state.apps.get(CLIENT_ID)
        if whoop_app is not None:
            for uri in uris:
                if uri not in whoop_app.redirect_uris:
                    whoop_app.redirect_uris.append(uri)


def _keep_current(app: Flask, dns_server, state, port: int, stop: threading.Event) -> None:
    """Every two seconds: the zone (edited by the wizard) and the sandbox's redirect URIs."""
    while not stop.wait(2.0):
        try:
            dns_server.load_zone(demo_zone(app), origin=ZONE)
            _register_redirects(app, state, port)
        except Exception as exc:  # keep serving the last good zone
            app.logger.warning("demo zone not updated: %s", type(exc).__name__)


def _spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A child in its own process group (the demo stops it, not the terminal's Ctrl-C)."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop_children(children: list[subprocess.Popen]) -> None:
    """SIGTERM each child's process group (an RQ worker's scheduler too); kill stragglers."""
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(max(0.1, deadline - time.monotonic()))
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(2)


def run_demo(app: Flask, host: str, ports: DemoPorts, verbose: bool = False) -> None:
    """Start every part, print how to use them, serve until Ctrl-C, stop every part."""
    from whoopadmin import redisconn
    from whoopadmin.demokit.console import Console, EventWatcher, LogTail, route_logs
    from whoopadmin.demokit.receiver import ReceiverServer
    from whoopadmin.demokit.service import RELOAD_EXTENSION, reload_when_connections_change
    from whoopadmin.domains import DNSServer
    from whoopadmin.sandbox.persist import Autosaver, StateFile
    from whoopadmin.sandbox.server import SandboxServer

    ports.check_distinct()
    instance = Path(app.instance_path)
    logs = instance / "logs"
    console = Console()

    with contextlib.ExitStack() as parts:
        dns_server = listen(
            "dns", host, ports.dns, lambda: DNSServer(host=host, port=ports.dns).start()
        )
        parts.callback(dns_server.stop)
        state, lost = StateFile(instance / SANDBOX_STATE).load(
            seed=1, webhook_retry_delays=(5, 30, 120, 600, 1800), webhook_loopback_only=True
        )
        parts.callback(state.close)
        sandbox = listen(
            "sandbox",
            host,
            ports.sandbox,
            lambda: SandboxServer(state, host=host, port=ports.sandbox),
        )
        parts.callback(sandbox.stop)
        receiver = listen(
            "receiver",
            host,
            ports.receiver,
            lambda: ReceiverServer(host, ports.receiver, on_receive=_report_delivery(console)),
        )
        parts.callback(receiver.stop)
        web = listen(
            "web",
            host,
            ports.web,
            lambda: serve_on(
                host, ports.web, app, threaded=True, request_handler=RedactingRequestHandler
            ),
        )
        parts.callback(web.server_close)
        web.daemon_threads = True
        port = web.server_port

        if app.config.get("DATABASE_URL"):  # the embedded database is upgraded by create_app
            upgrade(directory=app.extensions["migrate"].directory)
        seed_accounts()
        # One click-through: the demo's printed accounts sign in with a password alone.
        app.config["REQUIRE_MFA"] = False
        route_logs(app, logs, verbose)  # after any migration: Alembic configures logging
        embedded = redisconn.ensure_started(app)

        whoop_app = _ensure_sandbox_app(state, port)
        members = list(state.profiles.values())[:3] or [
            state.create_member(days=30) for _ in range(3)
        ]
        _register_redirects(app, state, port)
        autosaver = Autosaver(state, StateFile(instance / SANDBOX_STATE)).start()
        sandbox.start()
        receiver.start()

        settings = {
            "DEMO": "true",
            "ALLOW_PRIVATE_DESTINATIONS": "true",
            "PUBLIC_SCHEME": "http",
            "PUBLIC_PORT": str(port),
            "CNAME_TARGET": CNAME_TARGET,
            "VALIDATION_DOMAIN": VALIDATION_DOMAIN,
            "DNS_NAMESERVERS": f"{_loopback(host)}:{dns_server.port}",
            "DNS_TIMEOUT": "1.0",
            "WHOOP_AUTH_URL": sandbox.auth_url,
            "WHOOP_TOKEN_URL": sandbox.token_url,
            "WHOOP_API_BASE": sandbox.api_base,
            "REDIS_URL": app.config["REDIS_URL"],
        }
        app.config.update(settings)
        app.config.update(
            DEMO=True, ALLOW_PRIVATE_DESTINATIONS=True, PUBLIC_PORT=port, DNS_TIMEOUT=1.0
        )

        def reload_zone() -> None:
            dns_server.load_zone(demo_zone(app), origin=ZONE)

        reload_zone()
        app.extensions[RELOAD_EXTENSION] = reload_zone
        reload_when_connections_change()

        env = dict(os.environ, WHOOPADMIN_INSTANCE_PATH=app.instance_path)
        env.update({f"WHOOPADMIN_{k}": v for k, v in settings.items()})
        env["WHOOPADMIN_DEMO_PARENT"] = str(os.getpid())  # see cli._stop_with_demo
        if app.config.get("DATABASE_URL"):
            env["WHOOPADMIN_DATABASE_URL"] = app.config["DATABASE_URL"]
        command = [sys.executable, "-m", "whoopadmin.cli"]
        children = [
            _spawn([*command, "worker"], env, logs / "worker.log"),
            _spawn([*command, "cron"], env, logs / "cron.log"),
        ]
        stop = threading.Event()
        threading.Thread(
            target=_keep_current, args=(app, dns_server, state, port, stop), daemon=True
        ).start()

        _banner(console, app, host, port, sandbox, dns_server, receiver, whoop_app, members)
        if lost:
            console.line(f"Note: {lost}\n")
        if embedded is not None and not embedded.owner:
            owner = embedded.info().get("owner")
            console.line(
                f"Note: the embedded Redis was already running (started by process {owner}); "
                "it stops when that process stops.\n"
            )
        console.line("Press Ctrl-C to stop everything. What happens shows below:")
        watcher = EventWatcher(app, console).start()
        tail = (
            LogTail({"worker": logs / "worker.log", "cron": logs / "cron.log"}, console).start()
            if verbose
            else None
        )
        try:
            web.serve_forever(poll_interval=0.2)  # Ctrl-C ends it (werkzeug catches it)
        finally:
            # A second Ctrl-C must not cut the clean-up short with a traceback.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            console.line("\nStopping the demo…")
            stop.set()
            watcher.stop()
            if tail is not None:
                tail.stop()
            _stop_children(children)
            sandbox.stop()  # webhooks in flight finish or stay pending…
            autosaver.stop()  # …and are saved with everything else
            app.extensions.pop(RELOAD_EXTENSION, None)
    console.line("Stopped: web, worker, cron, sandbox, DNS and receiver.")


def _loopback(host: str) -> str:
    """The address to reach a part on: ``host``, or 127.0.0.1 for "every interface"."""
    return "127.0.0.1" if host in ("", "0.0.0.0") else host


def _report_delivery(console) -> Callable:
    def report(item, verdict) -> None:
        checked = {True: "signature valid", False: "signature INVALID", None: "not checked"}
        console.event(
            f"delivery received by the demo receiver: {item.type} ({checked[verdict.valid]})"
        )

    return report


def _banner(console, app, host, port, sandbox, dns_server, receiver, whoop_app, members) -> None:
    public = f"http://{HOSTNAME}:{port}"
    line = console.line
    line(f"\nwhoopadmin demo — admin pages on http://{host}:{port}/")
    line(f"Data and logs in {app.instance_path} (logs/: web, worker, cron; --verbose shows them)")
    line("\nStaff log-ins (the demo skips the second factor; production asks operators):")
    for email, role, password in DEMO_ACCOUNTS:
        line(f"  {role:<9} {email:<22} password: {password}")
    line(f"\nWHOOP sandbox on {sandbox.url} — the demo WHOOP app's credentials:")
    line(f"  client id     {whoop_app.client_id}")
    line(f"  client secret {whoop_app.client_secret}")
    line("Sandbox members (sign in with these at the sandbox's consent page):")
    for member in members:
        line(f"  {member.email}  password {member.password}  (user_id {member.user_id})")
    line(f"\nDemo DNS on {_loopback(host)}:{dns_server.port} (UDP and TCP), the zone {ZONE}:")
    line('  a subdomain you type has no records until you press "Publish these records in')
    line("  the demo DNS\" on the wizard's DNS step. Prepared names, each with a classic mistake:")
    for name in PREPARED:
        line(f"  {name.hostname:<34} {name.mistake}")
    line(f"\nDemo receiver (your backend's stand-in): inbox {receiver.url}/")
    line(f"  add {receiver.deliveries_url} as a destination (step 6 below)")
    line(
        f"\nWhat to try:\n"
        f"  1. Sign in as the operator, Connections → New connection, paste the client id and\n"
        f"     secret, Verify, then use the subdomain {HOSTNAME} (or a prepared name).\n"
        f'  2. The DNS step finds no records. Press "Publish these records in the demo DNS"\n'
        f"     and watch them verify; finish the wizard.\n"
        f"  3. Connect links → create one, open it ({public}/connect/...), approve at the\n"
        f"     sandbox as one of the members above.\n"
        f"  4. Links → your member: status, synced data, charts, the timeline.\n"
        f"  5. Add a workout at the sandbox: it sends a signed webhook, and the fetch shows on\n"
        f"     the member's timeline:\n"
        f"     curl -X POST {sandbox.url}/_sandbox/members/{members[0].user_id}/workouts \\\n"
        f"       -H 'Content-Type: application/json' \\\n"
        f'       -d "{{\\"start\\": \\"$(date -u -d \'-2 hours\' +%FT%TZ)\\", '
        f'\\"end\\": \\"$(date -u -d \'-1 hour\' +%FT%TZ)\\"}}"\n'
        f"  6. Destinations → New destination, URL {receiver.deliveries_url}; paste the signing\n"
        f"     secret it shows into the receiver's inbox page, then Send test event.\n"
        f"  7. Stop and start the demo again: links, data and the sandbox's grants are kept.\n"
    )
