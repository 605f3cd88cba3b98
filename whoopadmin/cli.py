"""The ``whoopadmin`` command: Flask's commands (run, shell, routes, db) plus our own."""

from __future__ import annotations

import signal
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup, with_appcontext

from whoopadmin import create_app


@click.group(cls=FlaskGroup, create_app=create_app)
def cli() -> None:
    """whoopadmin: connect your users' WHOOP accounts with your own WHOOP credentials."""
    # SIGTERM (systemd, `timeout`, a container stop) must unwind like Ctrl-C, so exit
    # handlers run and an embedded Redis started by this process is stopped. The worker
    # and the cron install their own handlers for a graceful stop.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


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


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def demo(host: str, port: int) -> None:
    """Run whoopadmin on the embedded defaults with demo staff accounts."""
    from whoopadmin.demo import run_demo

    run_demo(current_app._get_current_object(), host, port)


@click.group(cls=AppGroup)
def dns() -> None:
    """Check custom-domain DNS records."""


@dns.command("check")
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

    from whoopadmin import domains

    if bool(validation_name) != bool(validation_target):
        raise click.UsageError("give --validation-name and --validation-target together")
    if ca is not None and no_caa:
        raise click.UsageError("give --ca or --no-caa, not both")
    try:
        servers = domains.parse_nameservers(",".join(nameservers)) if nameservers else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--nameserver") from None
    if servers is None:
        servers = domains.parse_nameservers(current_app.config.get("DNS_NAMESERVERS") or None)
    source = "--ca" if ca is not None else "WHOOPADMIN_ACME_CA"
    try:
        ca = (
            None
            if no_caa
            else domains.normalise_ca(current_app.config["ACME_CA"] if ca is None else ca)
        )
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


def register_commands(app: Flask) -> None:
    """Attach whoopadmin's commands to ``app.cli`` (so ``runner.invoke`` sees them too)."""
    from whoopadmin.sandbox.cli import sandbox_command

    for command in (users, keys, dns, demo, worker, cron, sandbox_command):
        app.cli.add_command(command)


if __name__ == "__main__":  # ``python -m whoopadmin.cli``: what the demo starts its workers with
    cli()
