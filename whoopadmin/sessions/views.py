"""Your sessions: where you are signed in, with sign-out per session and everywhere else."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from whoopadmin.auth.forms import ActionForm
from whoopadmin.sessions import service
from whoopadmin.sessions.browsers import describe
from whoopadmin.sessions.login import current_session_id, sign_out

bp = Blueprint("sessions", __name__, url_prefix="/account/sessions")


@bp.route("")
@login_required
def list_sessions():
    """List the signed-in person's live sessions, the current one marked."""
    return render_template(
        "sessions/list.html",
        sessions=service.live_sessions(current_user),
        current_id=current_session_id(),
        describe=describe,
        form=ActionForm(),
    )


@bp.post("/<int:session_id>/end")
@login_required
def end_session(session_id: int):
    """Sign out one session (the current one signs this browser out)."""
    if not ActionForm().validate_on_submit():
        abort(400)
    user = current_user._get_current_object()
    if session_id == current_session_id():
        sign_out(user)
        flash("You are signed out.", "info")
        return redirect(url_for("auth.login")), 303
    try:
        service.end_one(user, session_id)
    except service.SessionNotFound as exc:
        abort(404, str(exc))
    flash("That session is signed out.", "success")
    return redirect(url_for("sessions.list_sessions")), 303


@bp.post("/end-others")
@login_required
def end_others():
    """Sign out every session but this one."""
    if not ActionForm().validate_on_submit():
        abort(400)
    count = service.end_others(current_user, current_session_id())
    flash(f"Signed out {count} other session{'s' if count != 1 else ''}.", "success")
    return redirect(url_for("sessions.list_sessions")), 303
