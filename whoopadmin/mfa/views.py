"""Enrolment, the sign-in code step, recovery codes and an operator's reset."""

from __future__ import annotations

from flask import (
    Blueprint,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required

from whoopadmin.auth import throttle
from whoopadmin.auth.guards import operator_required
from whoopadmin.auth.views import action_target, apply_change, login_limit, throttled
from whoopadmin.extensions import limiter
from whoopadmin.mfa import service, signin
from whoopadmin.mfa.forms import ConfirmForm, RegenerateForm, VerifyForm
from whoopadmin.sessions.login import current_session, current_session_id, sign_out

bp = Blueprint("mfa", __name__)
NO_STORE = {"Cache-Control": "no-store"}

# Pages an operator who must enrol can still open (everything else sends them to set-up).
ENROLMENT_PAGES = {
    "mfa.setup",
    "auth.logout",
    "static",
    "bootstrap.static",
    "main.healthz",
    "main.readyz",
}


@bp.before_app_request
def require_second_factor():
    """Send an operator without a second factor to enrolment before any other page.

    (CTFd's ``needs_setup`` guard.) Anonymous requests and the public pages do no database
    work here: the check needs a signed-in cookie session first.
    """
    from whoopadmin.web import PUBLIC_BLUEPRINTS

    if request.endpoint is None or request.endpoint in ENROLMENT_PAGES:
        return None
    if request.blueprint in PUBLIC_BLUEPRINTS or "_user_id" not in session:
        return None
    if not current_user.is_authenticated or not service.required_for(current_user):
        return None
    row = current_session()
    if row is not None and row.second_factor is None:
        return redirect(url_for("mfa.setup"))
    return None


def _qr(uri: str) -> str:
    import segno

    return segno.make(uri, error="m").svg_inline(scale=4, dark="#212529")


@bp.route("/account/mfa")
@login_required
def overview():
    """Your second factor: whether it is on, recovery codes left."""
    return render_template(
        "mfa/overview.html",
        enrolled=current_user.mfa_enrolled,
        required=service.required_for(current_user),
        codes_left=service.recovery_codes_left(current_user) if current_user.mfa_enrolled else 0,
        form=RegenerateForm(),
    )


@bp.route("/account/mfa/setup", methods=["GET", "POST"])
@limiter.limit(login_limit, methods=["POST"], on_breach=throttle.address_breached)
@login_required
def setup():
    """Add an authenticator app: a QR code and the secret as text, then a first code."""
    user = current_user._get_current_object()
    if user.mfa_enrolled:
        if current_session() is not None and current_session().second_factor is None:
            # Signed in without the factor this account has: sign in again, with it.
            sign_out(user)
            flash("Sign in again with your authentication code.", "info")
            return redirect(url_for("auth.login"))
        flash("Two-factor sign-in is already on.", "info")
        return redirect(url_for("mfa.overview"))
    form = ConfirmForm()
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                codes = service.confirm_enrolment(user, form.code.data, current_session_id())
            except service.MfaError as exc:
                flash(str(exc), "danger")
            else:
                page = render_template("mfa/recovery_codes.html", codes=codes, enrolled=True)
                return page, 200, NO_STORE
        # The secret was shown once: try the app's next code, or start over for a new one.
        page = render_template(
            "mfa/setup.html",
            form=ConfirmForm(formdata=None),
            secret=None,
            qr=None,
            required=service.required_for(user),
        )
        return page, 400, NO_STORE
    # Each visit shows a new secret: one that has been shown is never shown again.
    secret = service.begin_enrolment(user)
    page = render_template(
        "mfa/setup.html",
        form=form,
        secret=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        qr=_qr(service.provisioning_uri(user, secret)),
        required=service.required_for(user),
    )
    return page, 200, NO_STORE


@bp.post("/account/mfa/recovery-codes")
@limiter.limit(login_limit, on_breach=throttle.address_breached)
@login_required
def regenerate():
    """Replace the recovery codes (after a current code); show the new ones once."""
    form = RegenerateForm()
    if form.validate_on_submit():
        try:
            codes = service.regenerate_recovery_codes(current_user, form.code.data)
        except throttle.Throttled as exc:
            return throttled(exc)
        except service.MfaError as exc:
            flash(str(exc), "danger")
        else:
            return (
                render_template("mfa/recovery_codes.html", codes=codes, enrolled=False),
                200,
                NO_STORE,
            )
    else:
        flash(service.BAD_FORMAT, "danger")
    return redirect(url_for("mfa.overview")), 303


@bp.route("/login/verify", methods=["GET", "POST"])
@limiter.limit(login_limit, methods=["POST"], on_breach=throttle.address_breached)
def verify():
    """The second step of signing in: a code from the app, or a recovery code."""
    user, pending = signin.pending_user()
    if user is None:
        flash("Sign in again: the code step had expired.", "info")
        return redirect(url_for("auth.login"))
    form = VerifyForm()
    status = 200
    if form.validate_on_submit():
        try:
            used = service.verify(user, form.code.data)
        except throttle.Throttled as exc:
            return throttled(exc)
        except service.MfaError as exc:
            flash(str(exc), "danger")
            status = 401
        else:
            response = signin.finish(user, pending, used)  # a fresh cookie session
            if used == "recovery":
                flash(
                    f"You used a recovery code; {service.recovery_codes_left(user)} are left. "
                    "Make new ones under your account's Two-factor sign-in tab.",
                    "warning",
                )
            return response
    elif request.method == "POST":
        status = 400
    return render_template("mfa/verify.html", form=form, email=user.email), status


@bp.post("/staff/<int:user_id>/mfa/reset")
@operator_required
def reset_staff(user_id: int):
    """Remove a staff user's second factor (they enrol again); audited, signs them out."""
    user = action_target(user_id)
    return apply_change(
        user,
        lambda: service.reset(current_user, user),
        f"Two-factor sign-in removed for {user.email}; they set it up again at their next "
        "sign-in, and their sessions are signed out.",
    )
