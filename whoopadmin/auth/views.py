"""Sign-in, sign-out and staff management pages."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select

from whoopadmin.auth import service
from whoopadmin.auth.forms import ActionForm, LoginForm, NewStaffForm, PasswordResetForm, RoleForm
from whoopadmin.auth.guards import operator_required
from whoopadmin.auth.models import StaffUser
from whoopadmin.extensions import db, limiter

bp = Blueprint("auth", __name__)


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _login_email_key() -> str:
    # A second limit per target account, so spreading attempts over many
    # addresses does not get around it.
    return "login-email:" + (request.form.get("email") or "").strip().lower()[:255]


def _safe_next(target: str | None) -> str:
    """Return ``target`` if it is a path on this site, else the dashboard."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and "\\" not in target:
            return target
    return url_for("main.index")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@limiter.limit(_login_limit, methods=["POST"], key_func=_login_email_key)
def login():
    """Show the sign-in form and sign a staff user in."""
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm()
    status = 400 if request.method == "POST" else 200
    if form.validate_on_submit():
        user = service.authenticate(form.email.data, form.password.data)
        status = 401
        if user is None:
            flash("Wrong e-mail address or password.", "danger")
        elif not login_user(user):
            status = 403
            flash("This account is deactivated. Ask an operator to reactivate it.", "danger")
        else:
            service.record_login(user)
            return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout():
    """Sign out (a POST with a CSRF token, so no page can sign you out)."""
    if not ActionForm().validate_on_submit():
        abort(400)
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/staff")
@operator_required
def list_staff():
    """List staff accounts."""
    users = db.session.scalars(select(StaffUser).order_by(StaffUser.email)).all()
    return render_template("auth/staff_list.html", users=users)


@bp.route("/staff/new", methods=["GET", "POST"])
@operator_required
def create_staff():
    """Create a staff account."""
    form = NewStaffForm()
    if form.validate_on_submit():
        try:
            user = service.create_user(
                current_user, form.email.data, form.role.data, form.password.data
            )
        except service.StaffError as exc:
            flash(str(exc), "danger")
        else:
            flash(f"Created {user.email} ({user.role}).", "success")
            return redirect(url_for("auth.list_staff"))
    status = 400 if request.method == "POST" else 200
    return render_template("auth/staff_new.html", form=form), status


def _get_user(user_id: int) -> StaffUser:
    user = db.session.get(StaffUser, user_id)
    if user is None:
        abort(404, "No such staff account.")
    return user


@bp.route("/staff/<int:user_id>")
@operator_required
def show_staff(user_id: int):
    """One staff account, with its role, password and activation controls."""
    user = _get_user(user_id)
    return render_template(
        "auth/staff_detail.html",
        user=user,
        role_form=RoleForm(role=user.role),
        password_form=PasswordResetForm(),
        action_form=ActionForm(),
    )


def _apply(user: StaffUser, change, success: str):
    try:
        change()
    except service.StaffError as exc:
        flash(str(exc), "danger")
        return redirect(url_for("auth.show_staff", user_id=user.id)), 303
    flash(success, "success")
    return redirect(url_for("auth.show_staff", user_id=user.id)), 303


@bp.post("/staff/<int:user_id>/role")
@operator_required
def change_role(user_id: int):
    """Change a staff user's role."""
    user = _get_user(user_id)
    form = RoleForm()
    if not form.validate_on_submit():
        flash("Choose one of the listed roles.", "danger")
        return redirect(url_for("auth.show_staff", user_id=user.id)), 303
    role = form.role.data
    return _apply(
        user,
        lambda: service.change_role(current_user, user, role),
        f"{user.email} is now {role}.",
    )


@bp.post("/staff/<int:user_id>/password")
@operator_required
def reset_password(user_id: int):
    """Set a new password for a staff user."""
    user = _get_user(user_id)
    form = PasswordResetForm()
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(error, "danger")
        return redirect(url_for("auth.show_staff", user_id=user.id)), 303
    password = form.password.data
    return _apply(
        user,
        lambda: service.reset_password(current_user, user, password),
        f"New password set for {user.email}; their other sessions are signed out.",
    )


@bp.post("/staff/<int:user_id>/deactivate")
@operator_required
def deactivate_staff(user_id: int):
    """Deactivate a staff user."""
    user = _get_user(user_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    return _apply(
        user, lambda: service.set_active(current_user, user, False), f"{user.email} deactivated."
    )


@bp.post("/staff/<int:user_id>/activate")
@operator_required
def activate_staff(user_id: int):
    """Reactivate a staff user."""
    user = _get_user(user_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    return _apply(
        user, lambda: service.set_active(current_user, user, True), f"{user.email} reactivated."
    )
