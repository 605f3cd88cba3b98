"""Styled error pages (HTML) and JSON errors (API): never a stack trace."""

from __future__ import annotations

from flask import Flask, jsonify, make_response, render_template, request
from flask.globals import request_ctx
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Page not found",
    405: "Method not allowed",
    413: "Request too large",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Service unavailable",
}


def wants_json(req=None) -> bool:
    """Return whether the caller is a program (API, health checks) rather than a browser."""
    req = req or request
    if req.path.startswith(("/api/", "/hooks/", "/internal/", "/healthz", "/readyz")):
        return True
    best = req.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and not req.accept_mimetypes.accept_html


def render_error(code: int, message: str, retry_after: int | None = None):
    """Return an error response in the form the caller expects."""
    title = TITLES.get(code, "Error")
    if wants_json():
        body = jsonify(error=title.lower().replace(" ", "_"), message=message)
    elif request_ctx.url_adapter is None:  # no URLs can be built (a host Werkzeug refused)
        body = make_response(f"{title}: {message}\n", {"Content-Type": "text/plain"})
    else:
        from whoopadmin.connect.hosted import error_page

        # On a connection's host the visitor is an end user: their language, no admin links.
        body = error_page(code) or render_template(
            "errors/error.html", code=code, title=title, message=message
        )
    response = make_response(body, code)
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _http_error(exc: HTTPException):
    if exc.code == 429:
        message = "Too many attempts. Wait a minute, then try again."
        return render_error(429, message, retry_after=60)
    description = exc.description if exc.code and exc.code < 500 else None
    response = render_error(exc.code or 500, description or TITLES.get(exc.code or 500, "Error"))
    # Keep the headers the exception carries (a 405's Allow, a 401's WWW-Authenticate).
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _csrf_error(exc: CSRFError):
    return render_error(
        400, "The form had expired or was not sent from this site. Reload the page and try again."
    )


def _server_error(exc: Exception):
    return render_error(
        500, "An unexpected error occurred. It has been logged; nothing you saved was lost."
    )


def _database_error(exc: Exception):
    from flask import current_app

    from whoopadmin.extensions import db

    db.session.rollback()
    text = str(getattr(exc, "orig", exc)).lower()
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        current_app.logger.error("database schema missing: run `whoopadmin db upgrade`")
        return render_error(
            503, "The database has no schema yet: run `whoopadmin db upgrade`.", retry_after=5
        )
    current_app.logger.error("database unavailable: %s", type(exc).__name__)
    return render_error(
        503, "The database is not reachable right now. Try again in a moment.", retry_after=5
    )


def init_app(app: Flask) -> None:
    """Register the error handlers on ``app``."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    from whoopadmin.webhooks.groupcommit import StoreFailed

    app.register_error_handler(OperationalError, _database_error)
    app.register_error_handler(InterfaceError, _database_error)
    app.register_error_handler(StoreFailed, _database_error)  # a webhook group commit
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(InternalServerError, _server_error)
