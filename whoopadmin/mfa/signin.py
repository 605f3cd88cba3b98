"""The second step of signing in, between a right password (or SSO) and a session.

After the first factor the cookie session holds only "user N passed step one at T"
(signed, 5 minutes); ``/login/verify`` turns it into a server-side session once a code
matches.
"""

from __future__ import annotations

import time

from flask import redirect, session, url_for

from whoopadmin.extensions import db
from whoopadmin.sessions.login import sign_in

PENDING = "mfa_pending"
PENDING_SECONDS = 300


def after_first_factor(user, method: str, next_path: str, idp_second_factor: bool = False):
    """Sign ``user`` in, or ask for their code first; return the redirect."""
    if idp_second_factor:
        sign_in(user, method=method, second_factor="idp")
    elif user.mfa_enrolled:
        session.clear()
        session[PENDING] = {
            "user": user.id,
            "method": method,
            "at": int(time.time()),
            "next": next_path,
        }
        return redirect(url_for("mfa.verify"))
    else:
        sign_in(user, method=method)
    return redirect(next_path)


def pending_user():
    """Return the user waiting for their second step (and how they began), or (None, None)."""
    from whoopadmin.auth.models import StaffUser

    pending = session.get(PENDING)
    if not isinstance(pending, dict):
        return None, None
    started = pending.get("at")
    if not isinstance(started, int) or time.time() - started > PENDING_SECONDS:
        session.pop(PENDING, None)
        return None, None
    user = (
        db.session.get(StaffUser, pending.get("user"))
        if isinstance(pending.get("user"), int)
        else None
    )
    if user is None or not user.active or not user.mfa_enrolled:
        return None, None
    return user, pending


def finish(user, pending: dict, second_factor: str):
    """Start the session after a right code; return the redirect to where they were going."""
    sign_in(user, method=pending.get("method") or "password", second_factor=second_factor)
    return redirect(pending.get("next") or url_for("main.index"))
