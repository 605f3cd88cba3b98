"""Request-level plumbing shared by every page: proxies, hosts, security headers, pragmas."""

from __future__ import annotations

import ipaddress
import json
import re
import sqlite3

from flask import Flask, abort, current_app, g, request
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Request, Response

from whoopadmin.errors import wants_json

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
    """The request's host name, lower-cased, without port or final dot ("" if unparseable)."""
    return hostname_of(request.host)


# DNS labels or an IPv6 literal in brackets, and an optional port: what Werkzeug itself
# accepts as a host (it treats anything else as no host at all), minus what cannot be a
# name (empty or overlong labels, 999.1.2.3).
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::([1-9][0-9]{0,4}))?")
MAX_HOST_NAME = 253


def hostname_of(host: str) -> str:
    """A Host header's host name, lower-cased, without port or final dot.

    Empty when the header is not a valid ``host[:port]``: a name of DNS labels (ASCII,
    at most 253 characters), an IPv4 address or an IPv6 address in brackets, and a port
    up to 65535. Callers treat "" as a host that is nobody's.
    """
    match = _HOST.fullmatch(host.lower()) if host and host.isascii() else None
    if match is None or int(match.group(2) or 0) > 65535:
        return ""
    name = match.group(1)
    if name.startswith("["):
        try:
            return str(ipaddress.IPv6Address(name[1:-1]))
        except ValueError:
            return ""
    name = name.removesuffix(".")
    labels = name.split(".")
    if len(name) > MAX_HOST_NAME or not all(_LABEL.fullmatch(label) for label in labels):
        return ""
    if all(label.isdigit() for label in labels):  # 1.2.3.4, never 999.1 or 1.2.3.4.5
        try:
            return str(ipaddress.IPv4Address(name))
        except ValueError:
            return ""
    return name


BAD_HOST = "The Host header is not a valid host name."


class HostGuard:
    """WSGI middleware: a request whose Host header is not a valid host gets a 400 at once.

    Inside the proxy fix (so it judges the X-Forwarded-Host a trusted proxy passed on) and
    outside everything else, the webhook fast path included. Without it Werkzeug cannot
    build URLs for such a host, and the error page itself failed (a 500 and a traceback).
    """

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        host = environ.get("HTTP_HOST")
        if host is None or hostname_of(host):  # no header (HTTP/1.0): the server's name
            return self.wsgi_app(environ, start_response)
        if wants_json(Request(environ)):
            body = json.dumps({"error": "bad_request", "message": BAD_HOST}) + "\n"
            response = Response(body, 400, mimetype="application/json")
        else:
            response = Response(BAD_HOST + "\n", 400, mimetype="text/plain")
        response.headers.extend(SECURITY_HEADERS)
        response.headers["Cache-Control"] = "no-store"
        return response(environ, start_response)


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
    if not host:  # never an admin host, even when any host that is not a connection's is
        abort(400, BAD_HOST)
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


# Assets keep their own caching (revalidated by ETag); they hold nothing private.
STATIC_ENDPOINTS = {"static", "bootstrap.static"}
API_PREFIX = "/api/"


def _signed_in() -> bool:
    try:
        return bool(current_user.is_authenticated)
    except Exception:  # the user could not be loaded (database down): treat it as private
        return True


def no_store(response):
    """``Cache-Control: no-store`` on every API answer and every page for a signed-in user.

    Errors included: a browser's back button or a shared proxy must never show one staff
    member's page (or an API answer) to the next person at that machine.
    """
    if request.endpoint in STATIC_ENDPOINTS or request.blueprint == "webhooks":
        return response  # webhooks never carry a session; assets are public
    if request.path.startswith(API_PREFIX) or _signed_in():
        response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    """Install the host check, proxy fix, security headers and login settings on ``app``."""
    from whoopadmin.extensions import login_manager

    app.wsgi_app = HostGuard(app.wsgi_app)
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
    app.after_request(no_store)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"
