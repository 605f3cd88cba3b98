"""The ``whoopadmin`` command: Flask's commands (run, shell, routes, db) plus our own.

Commands are found without building the app. Only a command that uses the app (every
AppGroup command runs inside ``with_appcontext``) creates it, with its instance folder
and keys, and only one that uses Redis starts (or attaches to) the embedded server; so
``--help``, ``keys generate`` and ``dns check`` create nothing and start nothing.
"""

from __future__ import annotations

import os
import signal
import sys
from importlib import import_module, metadata

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup, with_appcontext

from whoopadmin import create_app

# Commands whose modules are slow to import (Flask-Migrate pulls in Alembic): loaded only
# when one of them runs; --help lists them with this text.
LAZY_COMMANDS = {
    "db": ("flask_migrate.cli:db", "Database migrations (Flask-Migrate): upgrade, current…"),
}
PLUGIN_HELP = {"limiter": "Inspect and clear rate limits (Flask-Limiter)."}


class _Listed(click.Command):
    """A stand-in that lists a lazy command in --help without importing it."""


class WhoopadminGroup(FlaskGroup):
    """FlaskGroup that lists and finds commands without creating the app."""

    def _load_plugin_commands(self) -> None:
        # Plugins (the flask.commands entry point) are looked up lazily too.
        if self._loaded_plugin_commands:
            return
        self._lazy = dict(LAZY_COMMANDS)
        for ep in metadata.entry_points(group="flask.commands"):
            about = PLUGIN_HELP.get(ep.name, f"From {ep.value.split(':')[0]}.")
            self._lazy.setdefault(ep.name, (ep.value, about))
        self._loaded_plugin_commands = True

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """Our commands, then lazily imported ones; the app's own only as a last resort."""
        self._load_plugin_commands()
        command = click.Group.get_command(self, ctx, name)
        if command is None and name in self._lazy:
            module, _, attribute = self._lazy[name][0].partition(":")
            command = getattr(import_module(module), attribute)
            self.add_command(command, name)
        if command is None:
            return super().get_command(ctx, name)  # loads the app: app.cli extras
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command, without creating the app."""
        self._load_plugin_commands()
        return sorted(set(click.Group.list_commands(self, ctx)) | set(self._lazy))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of --help, with lazy commands described but not imported."""
        self._load_plugin_commands()
        rows = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None:
                command = _Listed(name, help=self._lazy[name][1])
            if not command.hidden:
                rows.append((name, command))
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(name, c.get_short_help_str(limit)) for name, c in rows])


def _create_app() -> Flask:
    """create_app for the command line: a setting or folder that cannot work is a message."""
    from whoopadmin.config import ConfigError
    from whoopadmin.redisconn import EmbeddedRedisError

    try:
        return create_app()
    except (ConfigError, EmbeddedRedisError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        where = exc.filename or "the instance folder"
        raise click.ClickException(
            f"Cannot use {where}: {exc.strerror or exc}. Set WHOOPADMIN_INSTANCE_PATH to a "
            "folder you can write to."
        ) from None


@click.group(cls=WhoopadminGroup, create_app=_create_app)
def cli() -> None:
    """whoopadmin: connect your users' WHOOP accounts with your own WHOOP credentials."""
    # SIGTERM (systemd, `timeout`, a container stop) must unwind like Ctrl-C, so exit
    # handlers run and an embedded Redis started by this process is stopped. The worker
    # and the cron install their own handlers for a graceful stop.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _stop_with_demo()


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def _stop_with_demo() -> None:
    """In the demo's worker and cron: get SIGTERM when the demo dies, even if it is killed.

    Without this a killed demo would leave its worker and cron running, attached to a
    Redis that the next demo adopts, with the old run's settings.
    """
    parent = os.environ.get("WHOOPADMIN_DEMO_PARENT")
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if str(os.getppid()) != parent:  # the demo died before the line above
        raise SystemExit("whoopadmin demo has stopped; stopping too.")


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


def _staff(email: str):
    from whoopadmin.auth.service import find_by_email

    user = find_by_email(email)
    if user is None:
        raise click.ClickException(f"No staff account for {email}.")
    return user


@users.command("password-link")
@click.argument("email")
def users_password_link(email: str) -> None:
    """Print a one-time set-password link path for EMAIL (put the admin host in front)."""
    from whoopadmin.passwords.service import PasswordError, issue_link

    try:
        token = issue_link("cli", _staff(email))
    except PasswordError as exc:
        raise click.ClickException(str(exc)) from None
    hours = current_app.config["PASSWORD_LINK_HOURS"]
    click.echo(f"/set-password/{token}")
    click.echo(f"(works once, for {hours} hours)", err=True)


@users.command("reset-mfa")
@click.argument("email")
def users_reset_mfa(email: str) -> None:
    """Remove EMAIL's second factor and end their sessions (they set it up again)."""
    from whoopadmin.mfa.service import reset

    user = _staff(email)
    reset("cli", user)
    click.echo(f"Removed the second factor of {user.email}; their sessions are signed out.")


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
    from whoopadmin.keys import RotationError, rotate_keys

    try:
        result = rotate_keys()
    except CryptoError as exc:
        raise click.ClickException(f"Nothing was changed: {exc}") from None
    except RotationError as exc:
        raise click.ClickException(str(exc)) from None
    primary = current_app.extensions["whoopadmin.keyring"].primary_id
    click.echo(
        f"Re-encrypted {result.resealed} secrets with key {primary} "
        f"({result.from_old_keys} had used an older key)."
    )


_PORT = click.IntRange(0, 65535)


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface for every part.")
@click.option("--port", default=5000, show_default=True, type=_PORT, help="Admin pages.")
@click.option(
    "--sandbox-port", default=5055, show_default=True, type=_PORT, help="The WHOOP sandbox."
)
@click.option(
    "--dns-port", default=5053, show_default=True, type=_PORT, help="The demo DNS (UDP and TCP)."
)
@click.option(
    "--receiver-port",
    default=5056,
    show_default=True,
    type=_PORT,
    help="The demo receiver of deliveries.",
)
@click.option("--verbose", is_flag=True, help="Also show every log line on the console.")
@with_appcontext
def demo(
    host: str, port: int, sandbox_port: int, dns_port: int, receiver_port: int, verbose: bool
) -> None:
    """Run whoopadmin on the embedded defaults with demo accounts (port 0: any free port)."""
    from whoopadmin.demo import DemoPorts, run_demo

    ports = DemoPorts(web=port, sandbox=sandbox_port, dns=dns_port, receiver=receiver_port)
    run_demo(current_app._get_current_object(), host, ports, verbose=verbose)


@click.group(cls=AppGroup)
def dns() -> None:
    """Check custom-domain DNS records."""


@dns.command("check", with_appcontext=False)
@click.argument("hostname")
@click.option("--target", required=True, help="Where HOSTNAME's CNAME must point.")
@click.option("--validation-name", help="Name of the validation record (a CNAME).")
@click.option("--validation-target", help="Where the validation CNAME must point.")
@click.option(
    "--nameserver",
    "nameservers",
    multiple=True,
    help="IP:PORT to ask instead of the zone's own nameservers (repeatable).",
)
@click.option("--timeout", default=2.0, show_default=True, type=float, help="Per query, seconds.")
@click.option(
    "--ca",
    metavar="NAME",
    help="The certificate authority that CAA records must allow, as CAA names it "
    "(default: WHOOPADMIN_ACME_CA, letsencrypt.org).",
)
@click.option(
    "--no-caa", is_flag=True, help="Skip CAA (for a certificate from an issuer's own record)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def dns_check(
    hostname: str,
    target: str,
    validation_name: str | None,
    validation_target: str | None,
    nameservers: tuple[str, ...],
    timeout: float,
    ca: str | None,
    no_caa: bool,
    as_json: bool,
) -> None:
    """Run the wizard's DNS checks for HOSTNAME, CAA included; exit 0 when verified, 1 otherwise."""
    import json

    from whoopadmin import domains, read_settings

    settings = read_settings()
    if bool(validation_name) != bool(validation_target):
        raise click.UsageError("give --validation-name and --validation-target together")
    if ca is not None and no_caa:
        raise click.UsageError("give --ca or --no-caa, not both")
    try:
        servers = domains.parse_nameservers(",".join(nameservers)) if nameservers else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--nameserver") from None
    if servers is None:
        try:
            servers = domains.parse_nameservers(settings.get("DNS_NAMESERVERS") or None)
        except ValueError as exc:
            raise click.ClickException(f"WHOOPADMIN_DNS_NAMESERVERS: {exc}") from None
    source = "--ca" if ca is not None else "WHOOPADMIN_ACME_CA"
    try:
        ca = None if no_caa else domains.normalise_ca(settings["ACME_CA"] if ca is None else ca)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=source) from None
    try:
        issuer = (
            domains.make_issuer_record(validation_name, "CNAME", validation_target, hostname)
            if validation_name
            else None
        )
        records = domains.expected_records(hostname, target, None, None, issuer)
    except ValueError as exc:  # InvalidHostname included: exit 2, as for any bad argument
        raise click.UsageError(str(exc)) from None
    result = domains.check_domain(hostname, records, nameservers=servers, timeout=timeout, ca=ca)
    if as_json:
        findings = [
            {**f.to_dict(), "temporary": f.severity == "temporary"} for f in result.findings
        ]
        answer = {
            "status": result.status,
            "temporary": result.temporary,
            "caa_checked_for": ca,
            "findings": findings,
        }
        click.echo(json.dumps(answer, indent=2))
    else:
        click.echo(f"{result.hostname}: {result.status}")
        click.echo(f"  CAA checked for {ca}" if ca else "  CAA not checked (--no-caa)")
        for finding in result.findings:
            click.echo(f"  [{finding.code}] {finding.severity}: {finding.message}")
            if finding.fix:
                click.echo(f"      fix: {finding.fix}")
    raise SystemExit(0 if result.status == domains.VERIFIED else 1)


@click.command("worker")
@click.argument("queues", nargs=-1)
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option(
    "--fork/--no-fork",
    default=True,
    help="Run each job in a forked child (the default: a job that crashes or is killed "
    "is retried and the worker lives on), or in the worker itself: many times faster for "
    "small jobs such as webhooks, but a crash then takes the worker down with the job.",
)
@with_appcontext
def worker(queues: tuple[str, ...], burst: bool, fork: bool) -> None:
    """Process background jobs from QUEUES (default: all, in priority order)."""
    from rq import SimpleWorker, Worker

    from whoopadmin.jobs import make_worker

    try:
        rq_worker = make_worker(
            current_app._get_current_object(),
            queues,
            worker_class=Worker if fork else SimpleWorker,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="QUEUE") from None
    rq_worker.work(burst=burst, with_scheduler=True)


@click.command("cron")
@with_appcontext
def cron() -> None:
    """Run the scheduler that enqueues periodic work (run exactly one)."""
    from whoopadmin.jobs.schedule import build_cron

    build_cron(current_app._get_current_object()).start()


def _commands() -> tuple[click.Command, ...]:
    from whoopadmin.sandbox.cli import sandbox_command

    return (users, keys, dns, demo, worker, cron, sandbox_command)


def register_commands(app: Flask) -> None:
    """Attach whoopadmin's commands to ``app.cli`` (so ``runner.invoke`` sees them too)."""
    for command in _commands():
        app.cli.add_command(command)


for _command in _commands():
    cli.add_command(_command)


if __name__ == "__main__":  # ``python -m whoopadmin.cli``: what the demo starts its workers with
    cli()
