"""Who may call what on ``/api/v1``: the key check every API view goes through.

A key has **permissions** (``connect``, ``read``, ``write``: see ``PERMISSIONS``) and a
**scope**: all connections (including ones created later) or a list of them. A view:

    @bp.get("/users/<user_id>/<data_type>")
    @api_key_required("read")                 # 401 without a valid key, 403 without "read"
    def user_data(user_id, data_type):
        link = visible_link(user_id)          # None when missing *or* out of scope
        if link is None:
            return not_found()                # the same 404 either way: existence never leaks
        rows = db.session.scalars(select(WhoopRecord).where(WhoopRecord.link_id == link.id))

A query over many links keeps only the key's connections with ``in_scope``:
``select(Link).where(Link.reference_id == ref, in_scope(Link.connection_id))``.
Each operation also goes into ``openapi.py`` with ``_permission("read")`` in its
description and 403 among its responses (tests/api/test_scope_matrix.py checks both).

The rules, in the order a view applies them:

1. No key, an unknown, revoked or expired key: ``401 {"error": "unauthorized"}`` with
   ``WWW-Authenticate`` (``api_key_required``).
2. A key without the operation's permission: ``403 {"error": "forbidden"}``, before the
   body is read (``api_key_required``). It depends on the key only, so it tells nothing
   about any connection or user.
3. Bad input: ``400`` (the view).
4. Something named by id outside the scope answers exactly as if it did not exist *for
   this key*: a user (link) id → ``404 {"error": "not_found", "message": "No such user."}``
   (``visible_link`` / ``not_found``); a connection named in a request body →
   ``403 {"error": "forbidden", "field": "connection"}`` for a scoped key whether the
   connection exists or not (``named_connection``). An all-connections key gets ``404
   connection_not_found`` for a connection that does not exist: it can see them all.
5. Lists (``GET /users?reference_id=``) only hold rows in scope (``in_scope``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from flask import g, jsonify, request
from sqlalchemy import ColumnElement, select

from whoopadmin.api import rules, service
from whoopadmin.api.models import PERMISSIONS, ApiKey
from whoopadmin.connect.models import Link
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection


def error(status: int, code: str, message: str, field: str | None = None):
    """A JSON error response ``{"error": code, "message": message, "field"?: field}``."""
    body = {"error": code, "message": message}
    if field:
        body["field"] = field
    return jsonify(body), status


def unauthorized(message: str = "Send a valid API key as 'Authorization: Bearer <key>'."):
    """The 401 every refused key gets (with ``WWW-Authenticate``)."""
    response, status = error(401, "unauthorized", message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="whoopadmin"'
    return response, status


def forbidden(message: str, field: str | None = None):
    """``403 {"error": "forbidden"}``: the key may not do this."""
    return error(403, "forbidden", message, field)


def not_found():
    """The 404 for a user id that does not exist or that the key cannot see (identical)."""
    return error(404, "not_found", "No such user.")


def api_key_required(*permissions: str) -> Callable:
    """Decorator: require a valid API key holding every one of ``permissions``.

    ``@api_key_required("read")``. Puts the key in ``g.api_key`` (see ``current_key``);
    answers 401 (no, unknown, revoked or expired key) or 403 (a permission is missing)
    as JSON before the view runs. With no permission named, any valid key will do.
    """
    for permission in permissions:
        if permission not in PERMISSIONS:
            raise ValueError(f"unknown permission {permission!r}")

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            key = service.find_key(request.headers.get("Authorization"))
            if key is None or key.revoked_at is not None:
                return unauthorized()
            if key.expired:
                return unauthorized(
                    f"This API key expired at {key.expires_at.isoformat()}; create a new one."
                )
            service.mark_used(key)
            missing = [p for p in permissions if not key.allows(p)]
            if missing:
                return forbidden(f"This API key lacks the '{missing[0]}' permission.")
            g.api_key = key
            return view(*args, **kwargs)

        wrapped.api_permissions = permissions
        return wrapped

    return decorator


def current_key() -> ApiKey:
    """The key of this request (inside a view wrapped by ``api_key_required``)."""
    return g.api_key


def in_scope(column) -> ColumnElement[bool]:
    """A WHERE clause: ``column`` (a connection id) is one the current key may act on."""
    return current_key().connection_filter(column)


def visible_link(user_id: str) -> Link | None:
    """The link with this public id, if it exists *and* the current key may see it.

    One query with the scope in it: a link on another connection is not loaded at all.
    """
    if not user_id or len(user_id) > 64:
        return None
    return db.session.scalar(select(Link).where(Link.uid == user_id, in_scope(Link.connection_id)))


def _lookup_connection(value: int | str) -> Connection | None:
    if isinstance(value, int):
        # Ids beyond the column's range name nothing; the database would raise on them.
        return db.session.get(Connection, value) if rules.is_id(value) else None
    name = value.strip().lower()
    # Environment names are short and printable; a NUL would make PostgreSQL raise.
    if len(name) > 64 or not name.isprintable():
        return None
    return db.session.scalar(select(Connection).where(Connection.environment == name))


class ConnectionRefused(Exception):
    """A connection named in a request that the key may not use; ``response`` says why."""

    def __init__(self, response) -> None:
        super().__init__("connection refused")
        self.response = response


def named_connection(value: int | str, field: str = "connection") -> Connection:
    """The connection a request names by id or environment name, if the key may use it.

    Raises ``ConnectionRefused`` carrying the answer: for a scoped key, 403 whether the
    connection is outside the scope or does not exist at all (the two are indistinguishable);
    for an all-connections key, 404 ``connection_not_found`` when it does not exist.
    """
    key = current_key()
    connection = _lookup_connection(value)
    if key.all_connections:
        if connection is None:
            missing = error(404, "connection_not_found", "No such connection.", field)
            raise ConnectionRefused(missing)
        return connection
    if connection is None or not key.can_access(connection.id):
        raise ConnectionRefused(
            forbidden("This API key may not act on that connection (or it does not exist).", field)
        )
    return connection
