"""The JSON API (``/api/v1``) and the API key pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from whoopadmin.api import service
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
}


def route(rule: str, **options):
    """``bp.route`` without Werkzeug's slash merging: ``/users//x`` (an encoded slash in a
    user id) is a JSON 404 here, not an HTML 308 redirect to another user's URL."""
    return bp.route(rule, merge_slashes=False, **options)


def link_json(link: Link) -> dict:
    """A link as the API shows it: no tokens, no personal data."""
    connection = db.session.get(Connection, link.connection_id)

    def iso(value):
        return value.isoformat() if value else None

    return {
        "user_id": link.uid,
        "reference_id": link.reference_id,
        "connection": connection.environment,
        "whoop_user_id": link.whoop_user_id,
        "status": link.status,
        "status_reason": link.status_reason,
        "scopes": (link.scopes or "").split(),
        "connected_at": iso(link.connected_at),
        "revoked_at": iso(link.revoked_at),
        "created_at": iso(link.created_at),
    }


def _json_body():
    """The request's JSON body, or None when it is not JSON.

    ``get_json(silent=True)`` swallows ValueError only: nesting deeper than the recursion
    limit (a 10 kB body of brackets) raises RecursionError, which would be a 500.
    """
    try:
        return request.get_json(silent=True)
    except RecursionError:
        return None


def _valid_connection(value) -> bool:
    """Whether ``value`` can name a connection: an id (not a bool) or a non-blank name."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and bool(value.strip()))


@route("/connect-sessions", methods=["POST"])
@api_key_required("connect")
def create_connect_session():
    """Create a connect session for one of the operator's users."""
    body = _json_body()
    if not isinstance(body, dict):
        return error(400, "invalid_json", "Send a JSON object (Content-Type: application/json).")
    unknown = sorted(set(body) - CONNECT_FIELDS)
    if unknown:
        return error(400, "unknown_field", f"Unknown field(s): {', '.join(unknown)}.", unknown[0])
    if not _valid_connection(body.get("connection")):
        return error(
            400,
            "invalid_request",
            "connection (an id or environment name) is required.",
            "connection",
        )
    for name in ("reference_id", "success_redirect_url", "failure_redirect_url", "language"):
        if body.get(name) is not None and not isinstance(body[name], str):
            return error(400, "invalid_request", f"{name} must be a string.", name)
    try:
        connection = named_connection(body["connection"])
    except ConnectionRefused as refused:
        return refused.response
    try:
        session, token = connect_service.create_session(
            connection,
            reference_id=body.get("reference_id") or "",
            success_redirect_url=body.get("success_redirect_url"),
            failure_redirect_url=body.get("failure_redirect_url"),
            language=body.get("language"),
            expires_in=body.get("expires_in"),
            created_by=current_key(),
        )
    except connect_service.ConnectError as exc:
        status = 409 if exc.code in ("connection_not_ready", "connection_not_live") else 400
        return error(
            status, exc.code if exc.code != "invalid" else "invalid_request", str(exc), exc.field
        )
    return (
        jsonify(
            session_id=session.public_id,
            url=connect_service.connect_url(connection, token),
            expires_at=session.expires_at.isoformat(),
        ),
        201,
    )


@route("/users", methods=["GET"])
@api_key_required("read")
def list_users():
    """Links by the operator's own user id, on the connections the key may see."""
    reference_id = request.args.get("reference_id", "")
    # The rule connect sessions apply; a NUL would also make PostgreSQL raise.
    if not reference_id or len(reference_id) > 255 or not reference_id.isprintable():
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
    """A 400 for a user id that cannot be one (a NUL would also make PostgreSQL raise)."""
    if user_id.isprintable():
        return None
    return error(400, "invalid_request", "user_id is not a valid user id.", "user_id")


@route("/users/<user_id>", methods=["GET"])
@api_key_required("read")
def get_user(user_id: str):
    """One link."""
    if bad := _bad_user_id(user_id):
        return bad
    link = visible_link(user_id)
    if link is None:
        return not_found()
    return jsonify(link_json(link))


@route("/users/<user_id>", methods=["DELETE"])
@api_key_required("write")
def delete_user(user_id: str):
    """Disconnect a link: revoke at WHOOP and wipe its tokens."""
    if bad := _bad_user_id(user_id):
        return bad
    link = visible_link(user_id)
    if link is None:
        return not_found()
    connect_service.disconnect(link, current_key())
    return jsonify(link_json(link))


MAX_BACKFILL_DAYS = 366


def _timestamp(body: dict, name: str):
    value = body.get(name)
    if value is None:
        return None, None
    if not isinstance(value, str) or len(value) > 40:
        return None, error(400, "invalid_request", f"{name} must be an ISO 8601 date-time.", name)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None, error(400, "invalid_request", f"{name} must be an ISO 8601 date-time.", name)
    if parsed.tzinfo is None:
        return None, error(400, "invalid_request", f"{name} needs a time zone (e.g. Z).", name)
    # Near year 1 or 9999, converting to UTC or stepping back 30 days overflows (a 500).
    if not datetime(1970, 1, 1, tzinfo=UTC) <= parsed < datetime(9999, 1, 1, tzinfo=UTC):
        return None, error(
            400, "invalid_request", f"{name} must be between 1970 and 9998 (UTC).", name
        )
    return parsed.astimezone(UTC), None


@route("/users/<user_id>/backfill", methods=["POST"])
@api_key_required("write")
def backfill_user(user_id: str):
    """Queue a re-sync of one link over ``[start, end)`` (default: the last 30 days)."""
    from whoopadmin.audit import utcnow
    from whoopadmin.sync.service import LinkInactive, request_resync

    if bad := _bad_user_id(user_id):
        return bad
    body = _json_body() if request.get_data() else {}
    if not isinstance(body, dict):
        return error(400, "invalid_json", "Send a JSON object, or no body at all.")
    unknown = sorted(set(body) - {"start", "end"})
    if unknown:
        return error(400, "unknown_field", f"Unknown field(s): {', '.join(unknown)}.", unknown[0])
    start, bad = _timestamp(body, "start")
    if bad:
        return bad
    end, bad = _timestamp(body, "end")
    if bad:
        return bad
    link = visible_link(user_id)
    if link is None:
        return not_found()
    end = end or utcnow()
    start = start or end - timedelta(days=30)
    if start >= end:
        return error(400, "invalid_request", "start must be before end.", "start")
    if end - start > timedelta(days=MAX_BACKFILL_DAYS):
        return error(400, "invalid_request", f"At most {MAX_BACKFILL_DAYS} days at once.", "start")
    try:
        request_resync(current_key(), link, start, end)
    except LinkInactive as exc:
        return error(409, "link_inactive", str(exc))
    return (
        jsonify(user_id=link.uid, start=start.isoformat(), end=end.isoformat(), status="queued"),
        202,
    )


@route("/openapi.json", methods=["GET"])
def openapi():
    """The OpenAPI document of this API."""
    return jsonify(document())


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
