"""The ``whoopadmin`` command: Flask's commands (run, shell, routes, db) plus our own."""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup, with_appcontext

from whoopadmin import create_app


@click.group(cls=FlaskGroup, create_app=create_app)
def cli() -> None:
    """whoopadmin: connect your users' WHOOP accounts with your own WHOOP credentials."""


@click.group(cls=AppGroup)
def users() -> None:
    """Manage staff accounts."""


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("--password-stdin: no password on standard input.")
        return password
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@users.command("create")
@click.argument("email")
@click.option(
    "--role", type=click.Choice(["operator", "support"]), required=True, help="The staff role."
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_create(email: str, role: str, password_stdin: bool) -> None:
    """Create a staff account (the first operator is always made this way)."""
    from whoopadmin.auth.service import StaffError, create_user

    password = _read_password(password_stdin)
    try:
        user = create_user("cli", email, role, password)
    except StaffError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Created {user.role} {user.email}.")


@users.command("list")
def users_list() -> None:
    """List staff accounts."""
    from sqlalchemy import select

    from whoopadmin.auth.models import StaffUser
    from whoopadmin.extensions import db

    for user in db.session.scalars(select(StaffUser).order_by(StaffUser.email)):
        state = "active" if user.active else "deactivated"
        click.echo(f"{user.email}\t{user.role}\t{state}")


@click.group(cls=AppGroup)
def keys() -> None:
    """Manage the encryption keys that seal secrets at rest."""


@keys.command("generate", with_appcontext=False)
def keys_generate() -> None:
    """Print a new random key for WHOOPADMIN_ENCRYPTION_KEYS."""
    from whoopadmin.crypto import generate_key

    click.echo(generate_key())


@keys.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored secret with the first key in WHOOPADMIN_ENCRYPTION_KEYS."""
    from whoopadmin.crypto import CryptoError
    from whoopadmin.keys import rotate_keys

    try:
        result = rotate_keys()
    except CryptoError as exc:
        raise click.ClickException(f"Nothing was changed: {exc}") from None
    primary = current_app.extensions["whoopadmin.keyring"].primary_id
    click.echo(
        f"Re-encrypted {result.resealed} secrets with key {primary} "
        f"({result.from_old_keys} had used an older key)."
    )


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def demo(host: str, port: int) -> None:
    """Run whoopadmin on the embedded defaults with demo staff accounts."""
    from whoopadmin.demo import run_demo

    run_demo(current_app._get_current_object(), host, port)


def register_commands(app: Flask) -> None:
    """Attach whoopadmin's commands to ``app.cli`` (so ``runner.invoke`` sees them too)."""
    for command in (users, keys, demo):
        app.cli.add_command(command)
