"""Sign-in, sign-out and staff management pages."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import select

from whoopadmin.auth import service, throttle
from whoopadmin.auth.forms import ActionForm, LoginForm, NewStaffForm, RoleForm
from whoopadmin.auth.guards import operator_required
from whoopadmin.auth.models import StaffUser
from whoopadmin.extensions import db, limiter
from whoopadmin.mfa import signin
from whoopadmin.sessions.login import sign_out

bp = Blueprint("auth", __name__)


def login_limit() -> str:
    """The per-address limit on sign-in attempts (every sign-in step shares it)."""
    return current_app.config["LOGIN_RATE_LIMIT"]


def safe_next(target: str | None) -> str:
    """Return ``target`` if it is a path on this site, else the dashboard."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and "\\" not in target:
            return target
    return url_for("main.index")


def _login_page(form, status: int):
    from whoopadmin.sso.service import provider_name

    return render_template(
        "auth/login.html",
        form=form,
        local_passwords=current_app.config["LOCAL_PASSWORDS"],
        sso_name=provider_name(),
        next_path=request.args.get("next") or "",
    ), status


def throttled(exc: throttle.Throttled):
    """The 429 page for a throttled sign-in step, with when to try again."""
    from whoopadmin.errors import render_error

    minutes = max(1, round(exc.retry_after / 60))
    return render_error(
        429,
        f"Too many failed attempts. Try again in about {minutes} minute"
        f"{'s' if minutes != 1 else ''}.",
        retry_after=exc.retry_after,
    )


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(login_limit, methods=["POST"], on_breach=throttle.address_breached)
def login():
    """Show the sign-in form and check the password (the second factor comes next)."""
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm()
    if request.method == "POST" and not current_app.config["LOCAL_PASSWORDS"]:
        abort(403, "Password sign-in is turned off: use single sign-on.")
    if not form.validate_on_submit():
        return _login_page(form, 400 if request.method == "POST" else 200)
    try:
        user = service.authenticate(form.email.data, form.password.data, request.remote_addr or "")
    except throttle.Throttled as exc:
        return throttled(exc)
    except service.SignInRefused as exc:
        flash(str(exc), "danger")
        return _login_page(form, exc.status)
    return signin.after_first_factor(user, "password", safe_next(request.args.get("next")))


@bp.post("/logout")
@login_required
def logout():
    """Sign out (a POST with a CSRF token, so no page can sign you out)."""
    if not ActionForm().validate_on_submit():
        abort(400)
    sign_out(current_user._get_current_object())
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
    """Create a staff account, and show the one-time link its owner sets a password with."""
    from whoopadmin.passwords import service as passwords

    form = NewStaffForm()
    if form.validate_on_submit():
        try:
            user = service.create_user(current_user, form.email.data, form.role.data, None)
        except service.StaffError as exc:
            flash(str(exc), "danger")
        else:
            if not current_app.config["LOCAL_PASSWORDS"]:
                flash(
                    f"Created {user.email} ({user.role}): they sign in with single sign-on.",
                    "success",
                )
                return redirect(url_for("auth.show_staff", user_id=user.id))
            token = passwords.issue_link(current_user, user)
            return passwords_link_page(user, token, created=True)
    status = 400 if request.method == "POST" else 200
    return render_template("auth/staff_new.html", form=form), status


def passwords_link_page(user: StaffUser, token: str, created: bool):
    """The page that shows a set-password link once (never cached)."""
    return (
        render_template(
            "passwords/link_issued.html",
            user=user,
            link=url_for("passwords.set_password", token=token, _external=True),
            hours=current_app.config["PASSWORD_LINK_HOURS"],
            created=created,
        ),
        200,
        {"Cache-Control": "no-store"},
    )


def get_user(user_id: int) -> StaffUser:
    """Return the staff user ``user_id``, or a 404."""
    user = db.session.get(StaffUser, user_id)
    if user is None:
        abort(404, "No such staff account.")
    return user


def action_target(user_id: int) -> StaffUser:
    """The staff user a button posts about, after its CSRF token is checked (else a 400)."""
    user = get_user(user_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    return user


@bp.route("/staff/<int:user_id>")
@operator_required
def show_staff(user_id: int):
    """One staff account, with its role, password, second factor and activation controls."""
    user = get_user(user_id)
    return render_template(
        "auth/staff_detail.html",
        user=user,
        role_form=RoleForm(role=user.role),
        action_form=ActionForm(),
        local_passwords=current_app.config["LOCAL_PASSWORDS"],
    )


def apply_change(user: StaffUser, change, success: str):
    """Run ``change``; flash its error or ``success``; back to the account's page."""
    try:
        change()
    except ValueError as exc:  # every service's typed error is a ValueError
        flash(str(exc), "danger")
        return redirect(url_for("auth.show_staff", user_id=user.id)), 303
    flash(success, "success")
    return redirect(url_for("auth.show_staff", user_id=user.id)), 303


@bp.post("/staff/<int:user_id>/role")
@operator_required
def change_role(user_id: int):
    """Change a staff user's role."""
    user = get_user(user_id)
    form = RoleForm()
    if not form.validate_on_submit():
        flash("Choose one of the listed roles.", "danger")
        return redirect(url_for("auth.show_staff", user_id=user.id)), 303
    role = form.role.data
    return apply_change(
        user,
        lambda: service.change_role(current_user, user, role),
        f"{user.email} is now {role}; their sessions are signed out.",
    )


@bp.post("/staff/<int:user_id>/deactivate")
@operator_required
def deactivate_staff(user_id: int):
    """Deactivate a staff user."""
    user = action_target(user_id)
    return apply_change(
        user, lambda: service.set_active(current_user, user, False), f"{user.email} deactivated."
    )


@bp.post("/staff/<int:user_id>/activate")
@operator_required
def activate_staff(user_id: int):
    """Reactivate a staff user."""
    user = action_target(user_id)
    return apply_change(
        user, lambda: service.set_active(current_user, user, True), f"{user.email} reactivated."
    )
