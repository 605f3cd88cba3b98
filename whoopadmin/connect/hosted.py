"""The end user's pages on a connection's host: what they say, and their result ids.

After WHOOP's callback the browser is sent (303) to ``/connect/done/<result id>``, so the
address bar no longer holds WHOOP's ``code`` and ``state``. A result id is opaque: the
outcome, the page language and the time, sealed (AES-GCM, the app's key ring) and bound
to the connection. It carries no personal data and no link id, opens only on its own
connection's host, and only for ``RESULT_LIFETIME``; anyone else who gets the URL learns
no more than "someone's connect succeeded (or failed) here".
"""

from __future__ import annotations

import json
import time

from flask import g, render_template, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from whoopadmin.connect.models import ConnectSession, Link
from whoopadmin.crypto import CryptoError, associated_data
from whoopadmin.extensions import db
from whoopadmin.sealing import keyring
from whoopadmin.setup.models import Connection

RESULT_LIFETIME = 15 * 60  # seconds
MAX_RESULT_ID = 400
# Outcomes that are not failures: the page says so, and answers 200.
SUCCESSES = ("connected", "reconnected", "already_connected")

# The heading of each outcome's page; failures without their own use NOT_CONNECTED.
TITLES = {
    "connected": _l("Your WHOOP account is connected"),
    "reconnected": _l("Your WHOOP account is connected again"),
    "already_connected": _l("Your WHOOP account is already connected"),
    "session_expired": _l("This connect link has expired"),
    "session_used": _l("This connect link was already used"),
    "invalid_session": _l("This connect link is not valid"),
}
NOT_CONNECTED = _l("Your WHOOP account was not connected")
# What each outcome's page says below the heading (%(name)s: the operator's display name).
MESSAGES = {
    "connected": _l("%(name)s can now read your WHOOP data. You can close this page."),
    "reconnected": _l("%(name)s can read your WHOOP data again. You can close this page."),
    "already_connected": _l(
        "This link has already connected your WHOOP account to %(name)s. "
        "There is nothing more to do; you can close this page."
    ),
    "session_expired": _l("Ask %(name)s for a new link."),
    "session_used": _l("Each link works only once. Ask %(name)s for a new one."),
    "invalid_session": _l("Check that you opened the whole link, or ask %(name)s for a new one."),
}

# Error pages on a connection's host: words for the end user, not for an operator.
ERROR_TITLES = {
    400: _l("Something went wrong"),
    403: _l("Not allowed"),
    404: _l("Page not found"),
    405: _l("Something went wrong"),
    410: _l("This page has expired"),
    413: _l("Request too large"),
    429: _l("Too many requests"),
    500: _l("Something went wrong"),
    503: _l("Temporarily unavailable"),
}
ERROR_MESSAGES = {
    400: _l("The request could not be handled. Go back, reload the page and try again."),
    403: _l("This page cannot be opened from here."),
    404: _l("There is no page at this address. Check that you opened the whole link."),
    405: _l("The request could not be handled. Go back, reload the page and try again."),
    410: _l("This page was only shown for a short while after connecting."),
    413: _l("The request was too large."),
    429: _l("Too many attempts. Wait a minute, then try again."),
    500: _l("An unexpected error occurred. Try again in a moment."),
    503: _l("This service is not available right now. Try again in a moment."),
}


def page_problem(connection: Connection, session: ConnectSession | None) -> str | None:
    """Why a connect link cannot start a connect now, in the words its page uses.

    ``connection_not_live`` before the connection went live; ``already_connected`` when
    the link was used by a connect whose link is still live: the member connected, and
    must not be told otherwise.
    """
    from whoopadmin.connect.service import page_problem as service_problem

    problem = service_problem(connection, session)
    if problem == "session_used" and _connected(session):
        return "already_connected"
    return problem


def callback_outcome(session: ConnectSession | None, reason: str) -> str:
    """The hosted page's outcome for a failed callback: a replay of a connect that worked
    (the back button, a reload) is ``already_connected``, not a failure."""
    if reason in ("state_replayed", "session_used") and _connected(session):
        return "already_connected"
    return reason


def _connected(session: ConnectSession | None) -> bool:
    if session is None or session.link_id is None:
        return False
    status = db.session.scalar(select(Link.status).where(Link.id == session.link_id))
    return status in ("active", "error")


def problem_status(outcome: str) -> int:
    """The HTTP status of a connect link's page that cannot start a connect."""
    if outcome in SUCCESSES:
        return 200
    if outcome in ("member_cap_reached", "connection_not_live"):
        return 409
    return 404 if outcome == "invalid_session" else 410


def _aad(connection: Connection) -> bytes:
    return associated_data("connect_results", str(connection.id), "result")


def seal_result(connection: Connection, outcome: str, language: str | None) -> str:
    """An opaque id for the page that shows ``outcome`` on this connection's host."""
    payload = json.dumps(
        {"o": outcome, "l": language, "t": int(time.time())}, separators=(",", ":")
    )
    return keyring().seal(payload, _aad(connection))


def open_result(connection: Connection, result_id: str) -> dict | None:
    """The outcome behind a result id: ``{"outcome", "language", "expired"}``, or None.

    None for anything that is not a result id sealed for this connection (tampered,
    truncated, from another connection's host, or made with a key no longer configured).
    """
    if not result_id or len(result_id) > MAX_RESULT_ID:
        return None
    try:
        payload = json.loads(keyring().open(result_id, _aad(connection)))
        outcome, language, issued = str(payload["o"]), payload["l"], int(payload["t"])
    except (CryptoError, ValueError, KeyError, TypeError):
        return None
    age = time.time() - issued
    return {
        "outcome": outcome,
        "language": language if isinstance(language, str) else None,
        "expired": not 0 <= age <= RESULT_LIFETIME + 5,  # a little slack for clock steps
    }


def render_outcome(connection: Connection, outcome: str):
    """The page that tells the end user how their connect went (or why it cannot start)."""
    from whoopadmin.connect.service import REASONS

    name = connection.display_name
    message = MESSAGES.get(outcome) or REASONS.get(outcome) or MESSAGES["invalid_session"]
    return render_template(
        "connect/result.html",
        company=name,
        outcome=outcome,
        success=outcome in SUCCESSES,
        title=TITLES.get(outcome, NOT_CONNECTED),
        message=str(message) % {"name": name},
    )


def hosted_connection() -> Connection | None:
    """The connection whose host this request came to, for its error pages.

    ``route_by_host`` has set ``g.connection`` for a routed request. A request that failed
    before it ran (a CSRF refusal) or that matched no route (a 404 or 405) has its host
    looked up here. A database that fails now gets the admin error page instead.
    """
    from whoopadmin.web import ANY_HOST_ENDPOINTS, request_hostname

    connection = g.get("connection")
    routed = request.endpoint is not None and request.endpoint not in ANY_HOST_ENDPOINTS
    if connection is not None or (routed and "connection" in g):
        return connection
    try:
        return db.session.scalar(
            select(Connection).where(Connection.hostname == request_hostname())
        )
    except Exception:  # the database is down: this error page must still render
        db.session.rollback()
        return None


def error_page(code: int) -> str | None:
    """The error page for a connection's host, in the visitor's language; None elsewhere."""
    connection = hosted_connection()
    if connection is None:
        return None
    try:
        name = connection.display_name
    except Exception:  # expired by a rollback, and the database does not answer
        db.session.rollback()
        return None
    g.public_page = True
    return render_template(
        "connect/error.html",
        company=name,
        code=code,
        title=ERROR_TITLES.get(code, ERROR_TITLES[500]),
        message=ERROR_MESSAGES.get(code, ERROR_MESSAGES[500]),
    )
