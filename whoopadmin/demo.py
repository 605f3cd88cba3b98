"""``whoopadmin demo``: the product on the embedded defaults, ready to click through."""

from __future__ import annotations

import signal
import sys

import click
from flask import Flask
from flask_migrate import upgrade
from werkzeug.serving import run_simple

from whoopadmin.auth import service

DEMO_ACCOUNTS = (
    ("operator@example.com", "operator", "demo-operator-pass"),
    ("support@example.com", "support", "demo-support-pass"),
)


def seed_accounts() -> None:
    """Create the demo staff accounts once; a second run reuses them."""
    for email, role, password in DEMO_ACCOUNTS:
        if service.find_by_email(email) is None:
            service.create_user("demo", email, role, password)


def run_demo(app: Flask, host: str, port: int) -> None:
    """Migrate, seed, print how to sign in, and serve until Ctrl-C."""
    upgrade(directory=app.extensions["migrate"].directory)
    seed_accounts()
    url = f"http://{host}:{port}/"
    click.echo(f"\nwhoopadmin demo on {url}  (data in {app.instance_path})\n")
    for email, role, password in DEMO_ACCOUNTS:
        click.echo(f"  {role:<9} {email:<26} password: {password}")
    click.echo(
        "\nSign in as the operator to manage staff; sign in as support to see what support sees."
        "\nThe setup wizard, connect links and the WHOOP sandbox arrive with later releases."
        "\nPress Ctrl-C to stop.\n"
    )
    # SIGTERM must unwind like Ctrl-C, so the embedded Redis is shut down at exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # app.run() refuses to run inside a CLI command; run_simple is what it would call.
    run_simple(host, port, app, threaded=True)
