"""``whoopadmin demo``: the whole product on the embedded defaults, in one command.

One process serves the web app, the WHOOP sandbox (a local fake WHOOP) and a small
authoritative DNS server for the ``demo.localhost`` zone; a worker and the cron run as
child processes on the same embedded Redis and SQLite. The DNS server publishes the
records the wizard asks for, as an operator would at their DNS provider, and the wizard's
checks query it for real: nothing is skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import click
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import select
from werkzeug.serving import WSGIRequestHandler, run_simple

from whoopadmin.auth import service

DEMO_ACCOUNTS = (
    ("operator@example.com", "operator", "demo-operator-pass"),
    ("support@example.com", "support", "demo-support-pass"),
)
ZONE = "demo.localhost"
HOSTNAME = f"whoop.{ZONE}"
CNAME_TARGET = f"edge.{ZONE}"
VALIDATION_DOMAIN = f"acme-dns.{ZONE}"
CLIENT_ID = "whoopadmin-demo"
CLIENT_SECRET = "demo-client-secret-change-me"


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


def demo_zone(app: Flask) -> str:
    """The demo zone as an operator would have set it up: the records the wizard shows."""
    from whoopadmin.domains import zone_text
    from whoopadmin.setup.models import Connection

    lines = ["edge A 127.0.0.1", "acme-dns NS ns1"]
    with app.app_context():
        from whoopadmin.extensions import db

        for c in db.session.scalars(
            select(Connection).where(Connection.hostname.like(f"%.{ZONE}"))
        ):
            label = c.hostname[: -len(ZONE) - 1]
            lines.append(f"{label} CNAME {CNAME_TARGET}.")
            if c.validation_token:
                lines.append(
                    f"_acme-challenge.{label} CNAME {c.validation_token}.{VALIDATION_DOMAIN}."
                )
        db.session.remove()
    return zone_text(ZONE, "\n".join(lines))


def _keep_zone_current(app: Flask, dns_server, stop: threading.Event) -> None:
    while not stop.wait(2.0):
        try:
            dns_server.load_zone(demo_zone(app), origin=ZONE)
        except Exception as exc:  # keep serving the last good zone
            app.logger.warning("demo zone not updated: %s", type(exc).__name__)


def run_demo(app: Flask, host: str, port: int, sandbox_port: int = 5055) -> None:
    """Start every part, print how to use them, serve until Ctrl-C, stop every part."""
    from whoopadmin.domains import DNSServer
    from whoopadmin.sandbox.server import SandboxServer

    upgrade(directory=app.extensions["migrate"].directory)
    seed_accounts()
    # One click-through: the demo's printed accounts sign in with a password alone.
    app.config["REQUIRE_MFA"] = False

    dns_server = DNSServer().start()
    dns_server.load_zone(demo_zone(app), origin=ZONE)
    sandbox = SandboxServer(port=sandbox_port, seed=1, webhook_retry_delays=(5, 30, 120, 600, 1800))
    sandbox.start()
    public = f"http://{HOSTNAME}:{port}"
    whoop_app = sandbox.state.create_app(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        name="whoopadmin demo",
        redirect_uris=[f"{public}/auth/whoop/oauth2"],
        # WHOOP would post to the public URL; the sandbox posts by client id on loopback.
        webhook_urls=[f"http://127.0.0.1:{port}/hooks/whoop/push/{CLIENT_ID}"],
    )
    members = [sandbox.state.create_member(days=30) for _ in range(3)]

    settings = {
        "PUBLIC_SCHEME": "http",
        "PUBLIC_PORT": str(port),
        "CNAME_TARGET": CNAME_TARGET,
        "VALIDATION_DOMAIN": VALIDATION_DOMAIN,
        "DNS_NAMESERVERS": f"127.0.0.1:{dns_server.port}",
        "DNS_TIMEOUT": "1.0",
        "WHOOP_AUTH_URL": sandbox.auth_url,
        "WHOOP_TOKEN_URL": sandbox.token_url,
        "WHOOP_API_BASE": sandbox.api_base,
        "REDIS_URL": app.config["REDIS_URL"],
    }
    for name, value in settings.items():
        app.config[name] = int(value) if name == "PUBLIC_PORT" else value
    app.config["DNS_TIMEOUT"] = 1.0
    env = dict(os.environ, WHOOPADMIN_INSTANCE_PATH=app.instance_path)
    env.update({f"WHOOPADMIN_{k}": v for k, v in settings.items()})
    if app.config.get("DATABASE_URL"):
        env["WHOOPADMIN_DATABASE_URL"] = app.config["DATABASE_URL"]
    command = [sys.executable, "-m", "whoopadmin.cli"]
    children = [
        subprocess.Popen([*command, "worker"], env=env),
        subprocess.Popen([*command, "cron"], env=env),
    ]
    stop = threading.Event()
    threading.Thread(target=_keep_zone_current, args=(app, dns_server, stop), daemon=True).start()

    admin = f"http://{host}:{port}/"
    click.echo(f"\nwhoopadmin demo — admin pages on {admin}  (data in {app.instance_path})\n")
    click.echo("Staff log-ins (the demo skips the second factor; production asks operators):")
    for email, role, password in DEMO_ACCOUNTS:
        click.echo(f"  {role:<9} {email:<22} password: {password}")
    click.echo(f"\nWHOOP sandbox on {sandbox.url} — the demo WHOOP app's credentials:")
    click.echo(f"  client id     {whoop_app.client_id}")
    click.echo(f"  client secret {whoop_app.client_secret}")
    click.echo("Sandbox members (sign in with these at the sandbox's consent page):")
    for member in members:
        click.echo(f"  {member.email}  password {member.password}  (user_id {member.user_id})")
    click.echo(
        f"\nWhat to try:\n"
        f"  1. Sign in as the operator, Connections → New connection, paste the client id and\n"
        f"     secret, Verify, then use the subdomain {HOSTNAME}.\n"
        f"  2. The DNS step checks a real DNS server (127.0.0.1:{dns_server.port}) that already\n"
        f"     has the records for {ZONE}; press Check now, watch them verify, finish the wizard.\n"
        f"  3. Connect links → create one, open it ({public}/connect/...), approve at the\n"
        f"     sandbox as one of the members above.\n"
        f"  4. Links → your member: status, synced data, charts, the timeline.\n"
        f"  5. Add a workout at the sandbox: it sends a signed webhook, and the fetch shows on\n"
        f"     the member's timeline:\n"
        f"     curl -X POST {sandbox.url}/_sandbox/members/{members[0].user_id}/workouts \\\n"
        f"       -H 'Content-Type: application/json' \\\n"
        f'       -d "{{\\"start\\": \\"$(date -u -d \'-2 hours\' +%FT%TZ)\\", '
        f'\\"end\\": \\"$(date -u -d \'-1 hour\' +%FT%TZ)\\"}}"\n'
        f"Press Ctrl-C to stop everything.\n"
    )
    try:
        # app.run() refuses to run inside a CLI command; run_simple is what it would call.
        run_simple(host, port, app, threaded=True, request_handler=RedactingRequestHandler)
    finally:
        stop.set()
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
        sandbox.stop()
        dns_server.stop()
        time.sleep(0.1)
