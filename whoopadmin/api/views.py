"""The JSON API (``/api/v1``) and the API key pages."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from whoopadmin.api import rules, service
from whoopadmin.api.access import (
    ConnectionRefused,
    api_key_required,
    current_key,
    error,
    in_scope,
    named_connection,
    not_found,
    visible_link,
)
from whoopadmin.api.forms import ApiKeyForm
from whoopadmin.api.models import ApiKey
from whoopadmin.api.openapi import document
from whoopadmin.auth.guards import operator_required
from whoopadmin.confirm import confirmation_page, confirmed
from whoopadmin.connect import service as connect_service
from whoopadmin.connect.models import Link
from whoopadmin.extensions import csrf, db
from whoopadmin.setup.models import Connection

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # API calls carry a bearer key, not a browser session
keys_bp = Blueprint("apikeys", __name__, url_prefix="/api-keys")

CONNECT_FIELDS = {
    "connection",
    "reference_id",
    "success_redirect_url",
    "failure_redirect_url",
    "language",
    "expires_in",
    "backfill_days",
}


def link_json(link: Link) -> dict:
    """A link as the API shows it: no tokens, no personal data."""
    connection = db.session.get(Connection, link.connection_id)

    def iso(value):
        return value.isoformat() if value else None

    return {
        "provider": "whoop",
        "user_id": link.uid,
        "reference_id": link.reference_id,
        "connection": connection.environment,
        "provider_user_id": str(link.whoop_user_id),
        "whoop_user_id": link.whoop_user_id,
        "status": link.status,
        "status_reason": link.status_reason,
        "scopes": (link.scopes or "").split(),
        "connected_at": iso(link.connected_at),
        "revoked_at": iso(link.revoked_at),
        "created_at": iso(link.created_at),
    }


class BadInput(Exception):
    """An input the document's rules refuse; ``response`` is the JSON answer."""

    def __init__(self, response) -> None:
        super().__init__("bad input")
        self.response = response


def _json_object(*, optional: bool = False) -> dict:
    """The request's JSON object body (``{}`` for an optional, empty one); else BadInput.

    ``get_json`` would raise RecursionError on JSON nested deeper than the recursion limit
    (a 10 kB body of brackets): that is bad JSON too, not a 500.
    """
    # Before the body is read: a form body is parsed (and the stream emptied) on access.
    if not request.is_json and (request.content_length or request.get_data()):
        raise BadInput(
            error(415, "unsupported_media_type", "Send JSON (Content-Type: application/json).")
        )
    if optional and not request.get_data():
        return {}
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        body = None
    if not isinstance(body, dict):
        what = "a JSON object, or no body at all" if optional else "a JSON object"
        raise BadInput(error(400, "invalid_json", f"Send {what} (Content-Type: application/json)."))
    return body


def _refuse_unknown(body: dict, allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadInput(
            error(400, "unknown_field", f"Unknown field(s): {', '.join(unknown)}.", unknown[0])
        )


def _invalid(field: str, message: str) -> BadInput:
    return BadInput(error(400, "invalid_request", message, field))


def _connect_input(body: dict) -> dict:
    """The connect-session fields, checked against the document's rules (else BadInput)."""
    _refuse_unknown(body, CONNECT_FIELDS)
    connection = body.get("connection")
    if not (
        rules.is_id(connection)
        or (isinstance(connection, str) and rules.matches(rules.ENVIRONMENT, connection))
    ):
        raise _invalid(
            "connection",
            "connection (an id, or an environment name: lower-case letters, digits, "
            "hyphens) is required.",
        )
    if not rules.is_reference_id(body.get("reference_id")):
        raise _invalid(
            "reference_id", "reference_id must be 1-255 printable characters, not all spaces."
        )
    for name in ("success_redirect_url", "failure_redirect_url"):
        value = body.get(name)
        if value is not None and not (
            isinstance(value, str)
            and len(value) <= rules.REDIRECT_URL_MAX
            and rules.text_matches(rules.visible_only(), value)
        ):
            raise _invalid(name, f"{name} must be a URL: printable, no spaces, 2048 at most.")
    language = body.get("language")
    if language is not None and not (
        isinstance(language, str)
        and len(language) <= rules.LANGUAGE_MAX
        and rules.matches(rules.LANGUAGE, language)
    ):
        raise _invalid("language", "language must be a language tag such as en or en-GB.")
    expires_in = body.get("expires_in")
    low, high = rules.EXPIRES_IN
    if expires_in is not None and not (
        isinstance(expires_in, int) and not isinstance(expires_in, bool)
    ):
        raise _invalid("expires_in", "expires_in must be a whole number of seconds.")
    if expires_in is not None and not low <= expires_in <= high:
        raise _invalid("expires_in", f"expires_in must be between {low} and {high} seconds.")
    days = body.get("backfill_days")
    if days is not None and not (
        rules.is_whole(days) and rules.BACKFILL_DAYS[0] <= days <= rules.BACKFILL_DAYS[1]
    ):
        raise _invalid(
            "backfill_days",
            f"backfill_days must be a whole number of days from {rules.BACKFILL_DAYS[0]} to "
            f"{rules.BACKFILL_DAYS[1]}.",
        )
    return body


# ConnectError codes the service raises for an input that passed the document's rules.
CONNECT_CONFLICTS = {"connection_not_ready", "connection_not_live", "member_cap_reached"}
REDIRECT_FIELDS = {"success_redirect_url", "failure_redirect_url"}


@bp.post("/connect-sessions")
@api_key_required("connect")
def create_connect_session():
    """Create a connect session for one of the operator's users."""
    try:
        body = _connect_input(_json_object())
        connection = named_connection(body["connection"])
    except (BadInput, ConnectionRefused) as refused:
        return refused.response
    try:
        session, token = connect_service.create_session(
            connection,
            reference_id=body["reference_id"],
            success_redirect_url=body.get("success_redirect_url"),
            failure_redirect_url=body.get("failure_redirect_url"),
            language=body.get("language") or None,
            expires_in=body.get("expires_in"),
            created_by=current_key(),
            backfill_days=body.get("backfill_days"),
        )
    except connect_service.ConnectError as exc:
        if exc.code in CONNECT_CONFLICTS:
            return error(409, exc.code, str(exc), exc.field)
        if exc.code == "unsupported_language":
            return error(422, exc.code, str(exc), exc.field)
        if exc.field in REDIRECT_FIELDS:
            # Well-formed, but not on this connection's allowed origins or app schemes.
            return error(422, "redirect_not_allowed", str(exc), exc.field)
        return error(400, "invalid_request", str(exc), exc.field)
    return (
        jsonify(
            session_id=session.public_id,
            url=connect_service.connect_url(connection, token),
            expires_at=session.expires_at.isoformat(),
        ),
        201,
    )


@bp.get("/users")
@api_key_required("read")
def list_users():
    """Links by the operator's own user id, on the connections the key may see."""
    reference_id = request.args.get("reference_id", "")
    if not rules.text_matches(rules.printable_any(1, rules.REFERENCE_ID_MAX), reference_id):
        return error(
            400,
            "invalid_request",
            "reference_id (1-255 printable characters) is required.",
            "reference_id",
        )
    links = db.session.scalars(
        select(Link)
        .where(Link.reference_id == reference_id, in_scope(Link.connection_id))
        .order_by(Link.id)
    )
    return jsonify(users=[link_json(link) for link in links])


def _bad_user_id(user_id: str):
    """A 400 for a user id that cannot be one (a NUL would also make PostgreSQL raise).

    Any other id that is not 32 hexadecimal digits names no user: 404, like an unknown one.
    """
    if user_id.isprintable():
        return None
    return error(400, "invalid_request", "user_id is not a valid user id.", "user_id")


@bp.get("/users/<user_id>")
@api_key_required("read")
def get_user(user_id: str):
    """One link."""
    if bad := _bad_user_id(user_id):
        return bad
    link = visible_link(user_id)
    if link is None:
        return not_found()
    return jsonify(link_json(link))


@bp.delete("/users/<user_id>")
@api_key_required("write")
def delete_user(user_id: str):
    """Disconnect a link: revoke at WHOOP and wipe its tokens (``?erase=true``: erase it)."""
    from whoopadmin.erasure.api import _flag, erase_user

    if bad := _bad_user_id(user_id):
        return bad
    try:
        erase = _flag("erase")
    except ValueError:
        return error(400, "invalid_request", "erase must be true or false.", "erase")
    if erase:
        return erase_user(user_id)
    link = visible_link(user_id)
    if link is None:
        return not_found()
    connect_service.disconnect(link, current_key())
    return jsonify(link_json(link))


MAX_BACKFILL_DAYS = 366


def _timestamp(body: dict, name: str) -> datetime | None:
    """An RFC 3339 date-time field as UTC; BadInput (400, or 422 out of range) otherwise."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(name, f"{name} must be an RFC 3339 date-time, e.g. 2026-01-31T00:00:00Z.")
    try:
        return rules.parse_date_time(value)
    except rules.OutOfRange:
        raise BadInput(
            error(422, "invalid_window", f"{name} must be between 1970 and 9998 (UTC).", name)
        ) from None
    except ValueError:
        raise _invalid(
            name, f"{name} must be an RFC 3339 date-time, e.g. 2026-01-31T00:00:00Z."
        ) from None


def _window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """``[start, end)``, defaulting to the last 30 days; BadInput 422 when it is not one."""
    from whoopadmin.audit import utcnow

    end = end or utcnow()
    start = start or end - timedelta(days=30)
    if start >= end:
        raise BadInput(error(422, "invalid_window", "start must be before end.", "start"))
    if end - start > timedelta(days=MAX_BACKFILL_DAYS):
        raise BadInput(
            error(422, "invalid_window", f"At most {MAX_BACKFILL_DAYS} days at once.", "start")
        )
    return start, end


@bp.post("/users/<user_id>/backfill")
@api_key_required("write")
def backfill_user(user_id: str):
    """Queue a re-sync of one link over ``[start, end)`` (default: the last 30 days)."""
    from whoopadmin.sync.service import LinkInactive, request_resync

    if bad := _bad_user_id(user_id):
        return bad
    try:
        body = _json_object(optional=True)
        _refuse_unknown(body, {"start", "end"})
        start, end = _timestamp(body, "start"), _timestamp(body, "end")
        link = visible_link(user_id)
        if link is None:
            return not_found()
        start, end = _window(start, end)
    except BadInput as bad:
        return bad.response
    try:
        request_resync(current_key(), link, start, end)
    except LinkInactive as exc:
        return error(409, "link_inactive", str(exc))
    return (
        jsonify(user_id=link.uid, start=start.isoformat(), end=end.isoformat(), status="queued"),
        202,
    )


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI document of this API (UTF-8: its printable-character patterns are long)."""
    body = current_app.json.dumps(document(), ensure_ascii=False)
    return current_app.response_class(body, mimetype="application/json")


# The data API (whoopadmin/data): its views are part of /api/v1, under the same key check.
from whoopadmin.data.views import bp as data_bp  # noqa: E402

bp.register_blueprint(data_bp)


# --------------------------------------------------------------------------- key pages


def _new_key(form: ApiKeyForm) -> tuple[str | None, dict[str, list[str]]]:
    """Create the key the posted form describes; return it, or the errors per field."""
    if not form.validate():
        if form.csrf_token.errors:
            abort(400)
        return None, form.field_errors()
    if form.scope.data == "all" and form.connections.data:
        message = "You chose all connections and also ticked some: choose one or the other."
        return None, {"connections": [message]}
    try:
        expires_at = service.end_of_day(form.expires_on.data) if form.expires_on.data else None
        _, key = service.create_key(
            current_user,
            form.name.data or "",
            connection_ids=None if form.scope.data == "all" else form.connections.data,
            permissions=form.permissions.data or [],
            expires_at=expires_at,
        )
    except service.ApiKeyError as exc:
        return None, {exc.field or "name": [str(exc)]}
    return key, {}


def _connection_choices(connections: list[Connection]) -> list[SelectChoice]:
    return [SelectChoice(c.id, f"{c.environment} ({c.display_name})") for c in connections]


@keys_bp.route("", methods=["GET", "POST"])
@operator_required
def list_keys():
    """API keys; a new key is shown once, on the page that created it."""
    connections = list(db.session.scalars(select(Connection).order_by(Connection.id)))
    form = ApiKeyForm()
    form.connections.choices = _connection_choices(connections)
    new_key, errors = None, {}
    if request.method == "POST":
        new_key, errors = _new_key(form)
        if errors:
            flash("The key was not created: see the messages below.", "danger")
        else:
            form = ApiKeyForm(formdata=None)  # a fresh form under the new key
            form.connections.choices = _connection_choices(connections)
    page = render_template(
        "api/keys.html", keys=service.list_keys(), new_key=new_key, form=form, errors=errors
    )
    # The page that shows a new key must not be kept by the browser or a proxy.
    return page, 400 if errors else 200, {"Cache-Control": "no-store"}


@keys_bp.route("/<int:key_id>/revoke", methods=["GET", "POST"])
@operator_required
def revoke_key(key_id: int):
    """Revoke a key, after a confirmation page that names it."""
    key = db.session.get(ApiKey, key_id)
    if key is None:
        abort(404, "No such API key.")
    if key.revoked_at is not None:
        flash(f"Key {key.prefix}… is already revoked.", "info")
        return redirect(url_for("apikeys.list_keys"), 303)
    if not confirmed():
        return confirmation_page(
            title=f"Revoke the API key “{key.name}”?",
            consequences=[
                f"The key {key.prefix}… stops working at once: every call made with it "
                "gets 401 from then on.",
                "This cannot be undone; a backend that still uses the key needs a new one.",
            ],
            button="Revoke key",
            cancel_url=url_for("apikeys.list_keys"),
        )
    service.revoke_key(current_user, key)
    flash(f"Key {key.prefix}… revoked.", "success")
    return redirect(url_for("apikeys.list_keys"), 303)


# Issue 17: the erasure and export operations add their routes to this blueprint.
from whoopadmin.erasure import api as _erasure_api  # noqa: E402, F401
from whoopadmin.exports import api as _exports_api  # noqa: E402, F401
