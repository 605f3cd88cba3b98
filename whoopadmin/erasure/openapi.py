"""The erasure and export operations' part of the OpenAPI document (api/openapi.py)."""

from __future__ import annotations

from typing import Any

from whoopadmin.api.rules import GRACE_DAYS
from whoopadmin.retention.models import MAX_GRACE_DAYS

ERASURE = {
    "type": "object",
    "required": ["provider", "erasure_id", "user_hash", "status", "requested_at", "due_at"],
    "additionalProperties": False,
    "properties": {
        "provider": {"type": "string", "enum": ["whoop"]},
        "erasure_id": {"type": "string"},
        "user_id": {
            "type": "string",
            "nullable": True,
            "description": "null once the erasure is done: the id names no one any more.",
        },
        "user_hash": {
            "type": "string",
            "description": "SHA-256 (hex) of the user id: how the user.erased receipt "
            "names the user.",
        },
        "status": {"type": "string", "enum": ["scheduled", "running", "done", "cancelled"]},
        "requested_by": {"type": "string"},
        "requested_at": {"type": "string", "format": "date-time"},
        "due_at": {"type": "string", "format": "date-time"},
        "cancelled_at": {"type": "string", "format": "date-time", "nullable": True},
        "erased_at": {"type": "string", "format": "date-time", "nullable": True},
        "counts": {
            "type": "object",
            "additionalProperties": {"type": "integer"},
            "description": "Rows removed per kind (raw_objects, indicators, sync_runs, "
            "webhook_events, deliveries, link_events, connect_sessions, oauth_states, links).",
        },
    },
}


def extend(doc: dict[str, Any], errors, json_response, user_id_param, permission) -> None:
    """Add the erasure operations and the erase flag of DELETE /users/{user_id}."""
    doc["components"]["schemas"]["Erasure"] = ERASURE
    delete = doc["paths"]["/users/{user_id}"]["delete"]
    delete["operationId"] = "disconnectOrEraseUser"
    delete["description"] = (
        permission("write") + " Without erase: revokes at WHOOP and wipes the tokens; the "
        "link stays, with status revoked (repeating it is a no-op). With erase=true: "
        "schedules the erasure of the user's data (202): the link turns erasing at once "
        "(nothing is synced or delivered for it), and after grace_days (default: the "
        "connection's, 7) the user is revoked at WHOOP and every row about them deleted; "
        "DELETE /users/{user_id}/erasure undoes it until then. A second request while one is "
        "scheduled is 409 erasure_pending; an erased user's id is 410 user_erased."
    )
    delete["parameters"] = [
        user_id_param,
        {
            "name": "erase",
            "in": "query",
            "required": False,
            "description": "true: erase the user's data (see above). false or absent: "
            "disconnect only.",
            "schema": {"type": "string", "enum": ["true", "false"]},
        },
        {
            "name": "grace_days",
            "in": "query",
            "required": False,
            "description": f"With erase=true: days before the erasure takes effect (0 to "
            f"{MAX_GRACE_DAYS}; 0 = at once; ignored without erase). Default: the "
            "connection's grace period.",
            "schema": {"type": "string", "pattern": GRACE_DAYS},
        },
    ]
    delete["responses"] = {
        "200": json_response("User", "The link, now revoked (without erase)"),
        "202": json_response("Erasure", "The erasure, scheduled (or done, with 0 days)"),
        **errors(400, 401, 403, 404, 409, 410),
    }
    doc["paths"]["/users/{user_id}/erasure"] = {
        "get": {
            "operationId": "getErasure",
            "description": permission("read") + " The user's latest erasure request "
            "(404 no_erasure if none).",
            "parameters": [user_id_param],
            "responses": {
                "200": json_response("Erasure", "The latest erasure request"),
                **errors(400, 401, 403, 404, 410),
            },
        },
        "delete": {
            "operationId": "cancelErasure",
            "description": permission("write") + " Undo the user's scheduled erasure during "
            "its grace period: the link gets its previous status back. 409 not_scheduled "
            "when none is scheduled; 410 user_erased once it took effect.",
            "parameters": [user_id_param],
            "responses": {
                "200": json_response("Erasure", "The erasure, now cancelled"),
                **errors(400, 401, 403, 404, 409, 410),
            },
        },
    }
