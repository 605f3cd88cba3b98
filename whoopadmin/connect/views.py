"""The public pages on a connection's subdomain: the connect page and the OAuth callback."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    after_this_request,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import lazy_gettext as _l

from whoopadmin import i18n
from whoopadmin.connect import binding, hosted, service
from whoopadmin.setup.forms import ActionForm

bp = Blueprint("connect", __name__)

# What each scope shares, in the words the connect page uses.
SHARED = (
    ("read:profile", _l("Your name and e-mail address")),
    ("read:body_measurement", _l("Your height, weight and maximum heart rate")),
    ("read:cycles", _l("Your daily strain and heart rate")),
    (
        "read:recovery",
        _l("Your recovery score, HRV, resting heart rate, SpO2 and skin temperature"),
    ),
    ("read:sleep", _l("Your sleep: stages, duration, efficiency and performance")),
    ("read:workout", _l("Your workouts: strain, heart rate zones, distance and calories")),
    ("offline", _l("Continued access, so new data arrives without you signing in again")),
)
# Result pages must not be kept by a browser or a proxy (they are short-lived).
NO_STORE = {"Cache-Control": "no-store"}


def _connection():
    connection = g.get("connection")
    if connection is None:  # host routing sends only connection hosts here
        abort(404)
    return connection


def _problem(connection, outcome: str):
    return hosted.render_outcome(connection, outcome), hosted.problem_status(outcome)


def _to_result(connection, outcome: str, session):
    """303 to the page that shows ``outcome``: the address bar loses WHOOP's code and state."""
    result_id = hosted.seal_result(connection, outcome, session.language if session else None)
    return redirect(url_for("connect.show_result", result_id=result_id), 303)


def _at_cap(connection, session):
    """At the member cap: to the session's failure URL with the reason, or a hosted page."""
    if session.failure_redirect_url:
        params = {
            "reason": "member_cap_reached",
            "reference_id": session.reference_id,
            "resource": "whoop",
        }
        return redirect(service.redirect_with(session.failure_redirect_url, params), 303)
    return _problem(connection, "member_cap_reached")


@bp.route("/connect/<token>")
def show(token: str):
    """What will be shared, and a button to WHOOP."""
    connection = _connection()
    session = service.find_session(connection, token)
    i18n.use_language(session.language if session else None)
    problem = hosted.page_problem(connection, session)
    if problem:
        return _problem(connection, problem)
    if service.cap_problem(connection, session):
        return _at_cap(connection, session)
    return render_template(
        "connect/connect.html",
        company=connection.display_name,
        shared=SHARED,
        token=token,
        form=ActionForm(),
    )


@bp.post("/connect/<token>/start")
def start(token: str):
    """Create a fresh state and send the user to WHOOP's authorize page."""
    connection = _connection()
    session = service.find_session(connection, token)
    i18n.use_language(session.language if session else None)
    if not ActionForm().validate_on_submit():
        abort(400)
    problem = hosted.page_problem(connection, session)
    if problem:
        return _problem(connection, problem)
    if service.cap_problem(connection, session):
        return _at_cap(connection, session)
    started = service.start_authorization(connection, session)
    response = redirect(started.url, 303)
    return binding.set_cookie(response, started.state, started.binding, service.STATE_LIFETIME)


@bp.route("/auth/whoop/oauth2")
def callback():
    """WHOOP's redirect back: link the member, then go to the success or failure URL.

    Without those URLs the browser goes on to a result page (never rendered here, where
    the address bar holds WHOOP's code and state).
    """
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
        return _to_result(connection, "reconnected" if result.reconnected else "connected", session)
    if session is not None and session.failure_redirect_url:
        params = {
            "reason": result.reason,
            "reference_id": session.reference_id,
            "resource": "whoop",
        }
        return redirect(service.redirect_with(session.failure_redirect_url, params), 303)
    return _to_result(connection, hosted.callback_outcome(session, result.reason), session)


@bp.route("/connect/done/<result_id>")
def show_result(result_id: str):
    """How the connect went, for the browser that just came back from WHOOP."""
    connection = _connection()
    result = hosted.open_result(connection, result_id)
    if result is None:
        abort(404)
    i18n.use_language(result["language"])
    if result["expired"]:
        abort(410)
    return hosted.render_outcome(connection, result["outcome"]), 200, NO_STORE
