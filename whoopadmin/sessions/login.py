"""The Flask side of sessions: the cookie's session id, flask-login, the current session.

Flask's signed cookie still carries the CSRF token, and now a random session id that must
name a live ``StaffSession`` row, checked by flask-login's user loader on every request
that reads ``current_user``. Ending the row (sign-out, a password change, an operator's
action, the idle or absolute limit) signs that browser out, whatever cookie it replays.
"""

from __future__ import annotations

from flask import g, request, session
from flask_login import login_user, logout_user

from whoopadmin.sessions import service

KEY = "sid"


def sign_in(user, *, method: str = "password", second_factor: str | None = None) -> None:
    """Start a server-side session for ``user`` and put its id in a fresh cookie session."""
    token = service.start(
        user,
        address=request.remote_addr or "",
        user_agent=request.user_agent.string,
        method=method,
        second_factor=second_factor,
    )
    session.clear()  # nothing from before sign-in (a pending second step, an SSO state) stays
    login_user(user)
    session[KEY] = token


def sign_out(user) -> None:
    """End the current session row and clear the cookie session."""
    service.sign_out(user, current_session_id())
    logout_user()
    session.clear()


def load_user(identity: str):
    """flask-login's user loader: the user of the live session the cookie names, or None.

    Public pages (connect, webhooks) have no signed-in user: flask-login's template context
    asks on every render, and they must not pay a session lookup for a stray cookie.
    """
    from whoopadmin.web import PUBLIC_BLUEPRINTS

    if request.blueprint in PUBLIC_BLUEPRINTS:
        return None
    row = service.find_live(session.get(KEY) or "")
    if row is None or str(row.user_id) != identity or not row.user.active:
        return None
    g.staff_session = row
    return row.user


def current_session():
    """Return the signed-in request's session row (None when anonymous)."""
    return g.get("staff_session")


def current_session_id() -> int | None:
    """Return the id of the signed-in request's session row."""
    row = current_session()
    return row.id if row is not None else None
