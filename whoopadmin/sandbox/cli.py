"""``whoopadmin sandbox``: serve a local fake WHOOP with a demo app and members."""

from __future__ import annotations

import click

from .server import SandboxServer
from .state import SandboxState

DEFAULT_REDIRECT = "http://127.0.0.1:5000/auth/whoop/oauth2"
DEFAULT_WEBHOOK = "http://127.0.0.1:5000/hooks/whoop/push"


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5055, show_default=True, type=int, help="Port (0 = any free).")
@click.option("--seed", default=1, show_default=True, type=int, help="Seed for all fake data.")
@click.option("--members", default=3, show_default=True, type=click.IntRange(0, 1000))
@click.option(
    "--days",
    default=90,
    show_default=True,
    type=click.IntRange(1, 3650),
    help="Days of history per member.",
)
@click.option("--client-id", default=None, help="Client id of the demo app (default: generated).")
@click.option("--client-secret", default=None, help="Client secret of the demo app.")
@click.option(
    "--redirect-uri",
    "redirect_uris",
    multiple=True,
    help=f"Registered redirect URI (repeatable; default {DEFAULT_REDIRECT}).",
)
@click.option(
    "--webhook-url",
    "webhook_urls",
    multiple=True,
    help=f"Webhook URL (repeatable; default {DEFAULT_WEBHOOK}).",
)
@click.option(
    "--approved/--unapproved",
    default=False,
    show_default=True,
    help="Unapproved apps refuse an 11th member.",
)
@click.option("--rate-per-minute", default=100, show_default=True, type=click.IntRange(1))
@click.option("--rate-per-day", default=10_000, show_default=True, type=click.IntRange(1))
@click.option(
    "--token-ttl",
    default=3600,
    show_default=True,
    type=click.IntRange(1),
    help="Access token life in seconds.",
)
@click.option("--log-requests/--no-log-requests", default=True, show_default=True)
def sandbox_command(
    host: str,
    port: int,
    seed: int,
    members: int,
    days: int,
    client_id: str | None,
    client_secret: str | None,
    redirect_uris: tuple[str, ...],
    webhook_urls: tuple[str, ...],
    approved: bool,
    rate_per_minute: int,
    rate_per_day: int,
    token_ttl: int,
    log_requests: bool,
) -> None:
    """Run the WHOOP sandbox (a local fake of WHOOP's OAuth, API v2 and webhooks)."""
    state = SandboxState(seed=seed, access_token_ttl=token_ttl, default_days=days)
    app = state.create_app(
        client_id=client_id,
        client_secret=client_secret,
        name="whoopadmin demo",
        redirect_uris=list(redirect_uris) or [DEFAULT_REDIRECT],
        webhook_urls=list(webhook_urls) or [DEFAULT_WEBHOOK],
        rate_limit_per_minute=rate_per_minute,
        rate_limit_per_day=rate_per_day,
        approved=approved,
    )
    people = [state.create_member() for _ in range(members)]
    try:
        server = SandboxServer(state, host=host, port=port, quiet=not log_requests)
    except OSError as exc:
        state.close()
        raise click.ClickException(
            f"Cannot listen on {host}:{port} ({exc.strerror or exc}): stop what uses the "
            "port, or choose another with --port (--port 0 picks any free one)."
        ) from None

    click.echo(f"WHOOP sandbox listening on {server.url}")
    click.echo("")
    click.echo("Point whoopadmin at it:")
    for name, value in server.env().items():
        click.echo(f"  export {name}={value}")
    click.echo("")
    click.echo(f"App ({'approved' if app.approved else 'unapproved: 10-member cap'}):")
    click.echo(f"  client id:     {app.client_id}")
    click.echo(f"  client secret: {app.client_secret}")
    for uri in app.redirect_uris:
        click.echo(f"  redirect URI:  {uri}")
    for url in app.webhook_urls:
        click.echo(f"  webhook URL:   {url}")
    click.echo("")
    click.echo("Members (sign in on the consent page with these):")
    for person in people:
        click.echo(
            f"  {person.email}  password {person.password}  user_id {person.user_id}"
            f"  WHOOP {person.device}"
        )
    click.echo("")
    click.echo(f"Control API: {server.url}/_sandbox/   (Ctrl+C to stop)", nl=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("sandbox stopped")
