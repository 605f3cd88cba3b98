"""Change your own password; set one through an operator's one-time link; issue links."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from whoopadmin.auth import throttle
from whoopadmin.auth.guards import operator_required
from whoopadmin.auth.views import (
    action_target,
    get_user,
    login_limit,
    passwords_link_page,
    throttled,
)
from whoopadmin.extensions import limiter
from whoopadmin.passwords import service
from whoopadmin.passwords.forms import ChangePasswordForm, SetPasswordForm
from whoopadmin.sessions.login import current_session_id

bp = Blueprint("passwords", __name__)
NO_STORE = {"Cache-Control": "no-store"}


@bp.route("/account/password", methods=["GET", "POST"])
@limiter.limit(login_limit, methods=["POST"], on_breach=throttle.address_breached)
@login_required
def change_password():
    """Change your own password (the current one first); your other sessions end."""
    if not current_app.config["LOCAL_PASSWORDS"]:
        abort(404, "Passwords are turned off here: you sign in with single sign-on.")
    form = ChangePasswordForm()
    status = 200
    if form.validate_on_submit():
        try:
            service.change_own(
                current_user._get_current_object(),
                form.current.data,
                form.password.data,
                current_session_id(),
                request.remote_addr or "",
            )
        except throttle.Throttled as exc:
            return throttled(exc)
        except service.PasswordError as exc:
            flash(str(exc), "danger")
            status = 400
        else:
            flash("Password changed; your other sessions are signed out.", "success")
            return redirect(url_for("sessions.list_sessions")), 303
    elif request.method == "POST":
        status = 400
    return render_template("passwords/change.html", form=form), status


@bp.route("/set-password/<token>", methods=["GET", "POST"])
@limiter.limit(login_limit, methods=["POST"], on_breach=throttle.address_breached)
def set_password(token: str):
    """Set your password through a one-time link from an operator."""
    if not current_app.config["LOCAL_PASSWORDS"]:
        abort(404, "Passwords are turned off here: you sign in with single sign-on.")
    try:
        link = service.find_link(token)
    except service.PasswordError as exc:
        return render_template("passwords/dead_link.html", message=str(exc)), 404, NO_STORE
    form = SetPasswordForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = service.use_link(token, form.password.data)
        except service.PasswordError as exc:
            flash(str(exc), "danger")
            status = 400
        else:
            flash(f"Password set for {user.email}. Sign in with it now.", "success")
            return redirect(url_for("auth.login")), 303
    elif request.method == "POST":
        status = 400
    email = get_user(link.user_id).email
    return render_template("passwords/set.html", form=form, email=email), status, NO_STORE


@bp.post("/staff/<int:user_id>/password-link")
@operator_required
def issue_link(user_id: int):
    """Issue a one-time set-password link for a staff user (shown once)."""
    user = action_target(user_id)
    try:
        token = service.issue_link(current_user, user)
    except service.PasswordError as exc:
        flash(str(exc), "danger")
        return redirect(url_for("auth.show_staff", user_id=user.id)), 303
    return passwords_link_page(user, token, created=False)
