"""The erasure operations of ``/api/v1`` (routes on the API blueprint; see README "Erasure").

- ``DELETE /users/{user_id}?erase=true[&grace_days=n]``: schedule the erasure (202).
- ``GET /users/{user_id}/erasure``: the user's latest erasure request.
- ``DELETE /users/{user_id}/erasure``: undo a scheduled erasure (200).

An erased user is gone: its id answers ``410 user_erased`` (to a key that could see its
connection) on these operations, and 404 elsewhere.
"""

from __future__ import annotations

from flask import jsonify, request

from whoopadmin.api.access import api_key_required, current_key, error, in_scope, visible_link
from whoopadmin.api.rules import GRACE_DAYS, matches
from whoopadmin.api.views import _bad_user_id, bp
from whoopadmin.erasure import service
from whoopadmin.erasure.models import Erasure
from whoopadmin.retention.models import MAX_GRACE_DAYS

CONFLICTS = {"erasure_pending", "erasure_done", "not_scheduled"}


def erasure_json(erasure: Erasure, user_id: str | None = None) -> dict:
    """An erasure as the API shows it."""

    def iso(value):
        return value.isoformat() if value else None

    return {
        "provider": "whoop",
        "erasure_id": erasure.public_id,
        "user_id": user_id if erasure.status != "done" else None,
        "user_hash": erasure.user_hash,
        "status": erasure.status,
        "requested_by": erasure.requested_by,
        "requested_at": iso(erasure.requested_at),
        "due_at": iso(erasure.due_at),
        "cancelled_at": iso(erasure.cancelled_at),
        "erased_at": iso(erasure.done_at),
        "counts": dict(erasure.counts or {}),
    }


def _gone_or_missing(user_id: str):
    """410 for a user this key could see before it was erased; else the usual 404."""
    receipt = service.erased_receipt(user_id, in_scope)
    if receipt is not None:
        return error(410, "user_erased", f"This user was erased ({receipt.public_id}).")
    return error(404, "not_found", "No such user.")


def visible_or_gone(user_id: str):
    """(link, None) for a user this key sees; else (None, the 410 or 404 answer)."""
    link = visible_link(user_id)
    if link is None:
        return None, _gone_or_missing(user_id)
    return link, None


def _flag(name: str) -> bool | None:
    """A boolean query flag, exactly ``true`` or ``false`` as the document says (None when
    absent); ValueError otherwise."""
    value = request.args.get(name)
    if value is None:
        return None
    if value in ("true", "false"):
        return value == "true"
    raise ValueError(name)


def erase_user(user_id: str):
    """``DELETE /users/{user_id}?erase=true`` (called by ``delete_user``; 'write' checked)."""
    grace = request.args.get("grace_days")
    if grace is not None:
        if not (matches(GRACE_DAYS, grace) and int(grace) <= MAX_GRACE_DAYS):
            return error(
                400,
                "invalid_request",
                f"grace_days must be a whole number from 0 to {MAX_GRACE_DAYS}.",
                "grace_days",
            )
        grace = int(grace)
    link, missing = visible_or_gone(user_id)
    if missing is not None:
        return missing
    try:
        erasure = service.request_erasure(current_key(), link, grace)
    except service.ErasureError as exc:
        return error(409 if exc.code in CONFLICTS else 400, exc.code, str(exc))
    return jsonify(erasure_json(erasure, user_id)), 202


@bp.get("/users/<user_id>/erasure")
@api_key_required("read")
def get_erasure(user_id: str):
    """The user's latest erasure request (404 if there never was one)."""
    if bad := _bad_user_id(user_id):
        return bad
    link, missing = visible_or_gone(user_id)
    if missing is not None:
        return missing
    erasure = service.latest_for(link)
    if erasure is None:
        return error(404, "no_erasure", "No erasure was ever requested for this user.")
    return jsonify(erasure_json(erasure, user_id))


@bp.delete("/users/<user_id>/erasure")
@api_key_required("write")
def cancel_erasure(user_id: str):
    """Undo the user's scheduled erasure during its grace period."""
    if bad := _bad_user_id(user_id):
        return bad
    link, missing = visible_or_gone(user_id)
    if missing is not None:
        return missing
    erasure = service.pending_for(link)
    if erasure is None:
        return error(409, "not_scheduled", "No erasure of this user is scheduled.")
    try:
        erasure = service.cancel(current_key(), erasure)
    except service.ErasureError as exc:
        return error(409, exc.code, str(exc))
    return jsonify(erasure_json(erasure, user_id))
