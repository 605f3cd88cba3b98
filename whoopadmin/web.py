"""Request-level plumbing shared by every page: proxies, security headers, SQLite pragmas."""

from __future__ import annotations

import sqlite3

from flask import Flask, abort, current_app, g, request
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'self'; frame-ancestors 'none'"
)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # SQLite ignores foreign keys unless asked, and a worker and the web app writing at
    # once need WAL and a busy timeout instead of "database is locked".
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()


SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
)
HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")


def security_headers(response):
    """Add the security headers every response carries."""
    headers = response.headers
    for name, value in SECURITY_HEADERS + ((HSTS,) if request.is_secure else ()):
        headers.setdefault(name, value)
    return response


WEBHOOK_PATHS = "/hooks/whoop/"


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, except on WHOOP's webhook URLs, which never use one.

    Opening a session builds its signing serializer on every request: a twentieth of a
    webhook's time (bench/webhook_ingest.py). Flask opens it before the URL is matched,
    hence the path.
    """

    def open_session(self, app: Flask, request):
        if request.path.startswith(WEBHOOK_PATHS):
            return None  # Flask uses a null session, and never saves it
        return super().open_session(app, request)


# Blueprints that live on a connection's subdomain; everything else is an admin page.
PUBLIC_BLUEPRINTS = {"connect", "webhooks"}
# Reachable on every host: health checks, the TLS server's question, assets, and the
# webhook URL that names its connection by client id.
ANY_HOST_ENDPOINTS = {
    "main.healthz",
    "main.readyz",
    "internal.tls_ask",
    "ops.metrics",
    "static",
    "bootstrap.static",
    "webhooks.push_by_client",
    # Finds its connection itself, through a short-lived cache (webhooks.service.receiver).
    "webhooks.push",
}


def request_hostname() -> str:
    """The request's host name, lower-cased, without port or final dot."""
    return hostname_of(request.host)


def hostname_of(host: str) -> str:
    """A Host header's host name, lower-cased, without port or final dot."""
    host = host.lower()
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rsplit(":", 1)[0].rstrip(".") if ":" in host else host.rstrip(".")


def reject_nul():
    """Refuse NUL characters in the path, query or form: no database stores them (400)."""
    if b"%00" in request.query_string or "\x00" in request.path:
        abort(400, "The request contains a NUL character.")
    if request.blueprint == "webhooks":
        return None  # webhooks are read raw and checked by their own parser
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for values in request.form.listvalues():
            if any("\x00" in value for value in values):
                abort(400, "The form contains a NUL character.")
    return None


def route_by_host():
    """Send a connection's subdomain only to public pages, and admin hosts only to admin pages."""
    from sqlalchemy import select

    from whoopadmin.extensions import db
    from whoopadmin.setup.models import Connection

    g.connection = None
    if request.endpoint is None or request.endpoint in ANY_HOST_ENDPOINTS:
        return None  # health checks must answer even when the database does not
    host = request_hostname()
    admin_hosts = {
        h.strip().lower() for h in str(current_app.config.get("ADMIN_HOSTS") or "").split(",")
    } - {""}
    connection = None
    if host not in admin_hosts:
        connection = db.session.scalar(select(Connection).where(Connection.hostname == host))
    g.connection = connection
    public = request.blueprint in PUBLIC_BLUEPRINTS
    if connection is not None and not public:
        abort(404)
    if connection is None and public:
        abort(404)  # connect pages exist only on a connection's subdomain
    if admin_hosts and connection is None and host not in admin_hosts:
        abort(404)
    return None


def init_app(app: Flask) -> None:
    """Install the proxy fix, security headers and login settings on ``app``."""
    from whoopadmin.extensions import login_manager

    proxies = int(app.config.get("PROXY_COUNT") or 0)
    if proxies:
        app.wsgi_app = ProxyFix(
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_port=proxies
        )
    app.session_interface = SessionInterface()
    # No redirect from "//" to "/": an encoded slash in an id (/api/v1/users/%2F0) is a
    # 404 of its own (JSON under /api/), not an HTML 308 to another resource's URL.
    app.url_map.merge_slashes = False
    app.before_request(reject_nul)
    app.before_request(route_by_host)
    app.after_request(security_headers)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"
