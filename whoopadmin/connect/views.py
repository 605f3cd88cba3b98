"""The public pages on a connection's subdomain: the connect page and the OAuth callback."""

from __future__ import annotations

from flask import Blueprint, abort, after_this_request, g, redirect, render_template, request

from whoopadmin.connect import binding, service
from whoopadmin.setup.forms import ActionForm

bp = Blueprint("connect", __name__)

# What each scope shares, in the words the connect page uses.
SHARED = (
    ("read:profile", "Your name and e-mail address"),
    ("read:body_measurement", "Your height, weight and maximum heart rate"),
    ("read:cycles", "Your daily strain and heart rate"),
    ("read:recovery", "Your recovery score, HRV, resting heart rate, SpO2 and skin temperature"),
    ("read:sleep", "Your sleep: stages, duration, efficiency and performance"),
    ("read:workout", "Your workouts: strain, heart rate zones, distance and calories"),
    ("offline", "Continued access, so new data arrives without you signing in again"),
)


def _connection():
    connection = g.get("connection")
    if connection is None:  # host routing sends only connection hosts here
        abort(404)
    return connection


def _status(problem: str) -> int:
    return {"invalid_session": 404, "connection_not_live": 409}.get(problem, 410)


def _problem(connection, reason: str, status: int):
    message = service.REASONS.get(reason) or "This connect link is not valid."
    return (
        render_template(
            "connect/problem.html", connection=connection, reason=reason, message=message
        ),
        status,
    )


@bp.route("/connect/<token>")
def show(token: str):
    """What will be shared, and a button to WHOOP."""
    connection = _connection()
    session = service.find_session(connection, token)
    problem = service.page_problem(connection, session)
    if problem:
        return _problem(connection, problem, _status(problem))
    return render_template(
        "connect/connect.html",
        connection=connection,
        shared=SHARED,
        token=token,
        form=ActionForm(),
    )


@bp.post("/connect/<token>/start")
def start(token: str):
    """Create a fresh state and send the user to WHOOP's authorize page."""
    connection = _connection()
    if not ActionForm().validate_on_submit():
        abort(400)
    session = service.find_session(connection, token)
    problem = service.page_problem(connection, session)
    if problem:
        return _problem(connection, problem, _status(problem))
    started = service.start_authorization(connection, session)
    response = redirect(started.url, 303)
    return binding.set_cookie(response, started.state, started.binding, service.STATE_LIFETIME)


@bp.route("/auth/whoop/oauth2")
def callback():
    """WHOOP's redirect back: link the member, then go to the success or failure URL."""
    connection = _connection()
    result = service.complete_callback(connection, request.args, request.cookies)
    state = request.args.get("state") or ""
    if state and result.binding_spent:
        after_this_request(lambda response: binding.clear_cookie(response, state))
    session = result.session
    if result.link is not None:
        params = {
            "user_id": result.link.uid,
            "reference_id": session.reference_id,
            "resource": "whoop",
        }
        if session.success_redirect_url:
            return redirect(service.redirect_with(session.success_redirect_url, params), 303)
        return render_template(
            "connect/done.html", connection=connection, reconnected=result.reconnected
        )
    if session is not None and session.failure_redirect_url:
        params = {
            "reason": result.reason,
            "reference_id": session.reference_id,
            "resource": "whoop",
        }
        return redirect(service.redirect_with(session.failure_redirect_url, params), 303)
    return _problem(connection, result.reason, 400)
