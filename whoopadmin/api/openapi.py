"""The OpenAPI 3.0 document of ``/api/v1`` (kept beside the views; a test checks they match)."""

from __future__ import annotations

from typing import Any

from whoopadmin.api import rules
from whoopadmin.api.models import PERMISSIONS

_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "additionalProperties": False,
    "properties": {
        "error": {"type": "string", "description": "A stable code, e.g. forbidden."},
        "message": {"type": "string"},
        "field": {"type": "string", "description": "The input at fault, if one is."},
    },
}

_USER = {
    "type": "object",
    "required": [
        "provider",
        "user_id",
        "reference_id",
        "connection",
        "provider_user_id",
        "whoop_user_id",
        "status",
        "scopes",
    ],
    "additionalProperties": False,
    "properties": {
        "provider": {"$ref": "#/components/schemas/Provider"},
        "user_id": {"type": "string", "pattern": rules.USER_ID},
        "reference_id": {"type": "string"},
        "connection": {"type": "string"},
        "provider_user_id": {
            "type": "string",
            "description": "The member's user id at the provider (at WHOOP: its user id).",
        },
        "whoop_user_id": {
            "type": "integer",
            "format": "int64",
            "description": "The same as provider_user_id, kept for existing clients.",
        },
        "status": {
            "type": "string",
            "enum": ["active", "reauth_required", "revoked", "error", "erasing"],
        },
        "status_reason": {"type": "string", "nullable": True},
        "scopes": {"type": "array", "items": {"type": "string"}},
        "connected_at": {"type": "string", "format": "date-time", "nullable": True},
        "revoked_at": {"type": "string", "format": "date-time", "nullable": True},
        "created_at": {"type": "string", "format": "date-time", "nullable": True},
    },
}

# What each error status means on this API (the operations list the ones they answer).
_STATUS_TEXT = {
    400: "The request breaks a rule this document states (invalid_json, unknown_field, "
    "invalid_request; field names the input).",
    401: "No API key, or an unknown, revoked or expired one (unauthorized).",
    403: "The key lacks the operation's permission, or (connect-sessions) the connection "
    "named is not one the key may act on — or does not exist (forbidden). For a scoped key "
    "the two are indistinguishable.",
    404: "No such user, or one on a connection the key may not act on: the two answer alike "
    "(not_found). connect-sessions: no such connection, for an all-connections key "
    "(connection_not_found).",
    409: "The request conflicts with the state of the connection or link "
    "(connection_not_ready, connection_not_live, member_cap_reached: the connection is at "
    "its member cap and the reference id has no live link; link_inactive; erasure: "
    "erasure_pending, not_scheduled, erasure_done).",
    410: "The user was erased (user_erased): its data is gone for good.",
    415: "The body is not JSON (unsupported_media_type).",
    422: "The request matches this document but breaks a rule it cannot state: a redirect URL "
    "not on the connection's allowed origins or app schemes (redirect_not_allowed), a "
    "backfill window that is empty, longer than 366 days or outside 1970-9998 "
    "(invalid_window), a language with no translation (unsupported_language).",
}


def _error_responses(*codes: int) -> dict[str, Any]:
    responses = {}
    for code in codes:
        response = {
            "description": _STATUS_TEXT[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        if code == 401:
            response["headers"] = {
                "WWW-Authenticate": {
                    "description": 'Always Bearer realm="whoopadmin".',
                    "required": True,
                    "schema": {"type": "string"},
                }
            }
        responses[str(code)] = response
    return responses


def _json(ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


_USER_ID = {
    "name": "user_id",
    "in": "path",
    "required": True,
    "description": "The user id the API returned (32 hexadecimal digits). Any other printable "
    "id is a 404; one with control characters a 400.",
    "schema": {"type": "string", "pattern": rules.USER_ID},
}


def _permission(name: str) -> str:
    return f"Needs an API key with the '{name}' permission."


def document() -> dict[str, Any]:
    """Return the OpenAPI document (with the data API's part, ``data/openapi.py``)."""
    from whoopadmin.data import openapi as data_api

    doc = _document()
    doc["components"]["schemas"].update(data_api.SCHEMAS)
    doc["paths"].update(data_api.paths(_USER_ID, _error_responses, _json, _permission))
    return doc


def _document() -> dict[str, Any]:
    low, high = rules.EXPIRES_IN
    doc = {
        "openapi": "3.0.3",
        "info": {
            "title": "whoopadmin API",
            "version": "1.0.0",
            "description": "Create connect links and read or disconnect WHOOP links. "
            "Authenticate with 'Authorization: Bearer <API key>'. A key acts on all "
            "connections or on the ones it names, with some of the permissions "
            f"{', '.join(PERMISSIONS)}; a key may expire.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"apiKey": []}],
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": _ERROR,
                "User": _USER,
                "UserList": {
                    "type": "object",
                    "required": ["users"],
                    "additionalProperties": False,
                    "properties": {
                        "users": {"type": "array", "items": {"$ref": "#/components/schemas/User"}}
                    },
                },
                "ReferenceId": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": rules.REFERENCE_ID_MAX,
                    "pattern": rules.printable_text(),
                    "description": "Your own id for the user: printable characters (no "
                    "control, format, surrogate or separator character but the space), not "
                    "all spaces; surrounding spaces are trimmed.",
                    "example": "user-42",
                },
                "RedirectUrl": {
                    "type": "string",
                    "nullable": True,
                    # The length is in the pattern (as for reference_id): schemathesis would
                    # fold maxLength into it in Python syntax, which it cannot generate from.
                    "pattern": rules.visible_only(rules.REDIRECT_URL_MAX),
                    "description": "Printable, no spaces. It must be on one of the "
                    "connection's allowed origins or registered app schemes (else 422 "
                    "redirect_not_allowed). Empty or null: none.",
                },
                "ConnectSessionRequest": {
                    "type": "object",
                    "required": ["connection", "reference_id"],
                    "additionalProperties": False,
                    "properties": {
                        "connection": {
                            "oneOf": [
                                {"type": "integer", "minimum": 1, "maximum": rules.MAX_ID},
                                {"type": "string", "pattern": rules.ENVIRONMENT},
                            ],
                            "description": "The connection's id or environment name (1-64 "
                            "lower-case letters, digits and inner hyphens).",
                            "example": "production",
                        },
                        "reference_id": {"$ref": "#/components/schemas/ReferenceId"},
                        "success_redirect_url": {"$ref": "#/components/schemas/RedirectUrl"},
                        "failure_redirect_url": {"$ref": "#/components/schemas/RedirectUrl"},
                        "language": {
                            "type": "string",
                            "nullable": True,
                            "maxLength": rules.LANGUAGE_MAX,
                            "pattern": rules.LANGUAGE,
                            "description": "The connect page's language (BCP 47, e.g. de or "
                            "de-AT); a tag whose language has no translation is refused "
                            "with 422 unsupported_language. Empty or null: the member's "
                            "browser's Accept-Language chooses.",
                        },
                        "expires_in": {
                            "type": "integer",
                            "nullable": True,
                            "minimum": low,
                            "maximum": high,
                            "description": "Seconds until the link expires (default 900).",
                        },
                        "backfill_days": {
                            "type": "integer",
                            "nullable": True,
                            "minimum": rules.BACKFILL_DAYS[0],
                            "maximum": rules.BACKFILL_DAYS[1],
                            "description": "Days of history fetched after the member's "
                            "consent. Default (null): the connection's setting.",
                        },
                    },
                },
                "BackfillRequest": {
                    "type": "object",
                    "additionalProperties": False,
                    "description": "start must be before end, at most 366 days apart, both "
                    "between 1970 and 9998 (UTC); else 422 invalid_window. Defaults: end now, "
                    "start 30 days before end.",
                    "properties": {
                        "start": {
                            "type": "string",
                            "format": "date-time",
                            "maxLength": rules.DATE_TIME_MAX,
                            "nullable": True,
                        },
                        "end": {
                            "type": "string",
                            "format": "date-time",
                            "maxLength": rules.DATE_TIME_MAX,
                            "nullable": True,
                        },
                    },
                },
                "Backfill": {
                    "type": "object",
                    "required": ["user_id", "start", "end", "status"],
                    "additionalProperties": False,
                    "properties": {
                        "user_id": {"type": "string", "pattern": rules.USER_ID},
                        "start": {"type": "string", "format": "date-time"},
                        "end": {"type": "string", "format": "date-time"},
                        "status": {"type": "string", "enum": ["queued"]},
                    },
                },
                "ConnectSession": {
                    "type": "object",
                    "required": ["session_id", "url", "expires_at"],
                    "additionalProperties": False,
                    "properties": {
                        "session_id": {"type": "string"},
                        "url": {"type": "string"},
                        "expires_at": {"type": "string", "format": "date-time"},
                    },
                },
            },
        },
        "paths": {
            "/connect-sessions": {
                "post": {
                    "operationId": "createConnectSession",
                    "description": _permission("connect"),
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ConnectSessionRequest"}
                            }
                        },
                    },
                    "responses": {
                        "201": _json("ConnectSession", "The connect link"),
                        **_error_responses(400, 401, 403, 404, 409, 415, 422),
                    },
                }
            },
            "/users": {
                "get": {
                    "operationId": "listUsers",
                    "description": _permission("read") + " Lists only links on the "
                    "connections the key may act on.",
                    "parameters": [
                        {
                            "name": "reference_id",
                            "in": "query",
                            "required": True,
                            "description": "1-255 printable characters, matched exactly (no "
                            "trimming).",
                            # The length is in the pattern: schemathesis would fold minLength
                            # and maxLength into it and write the result in Python syntax.
                            "schema": {
                                "type": "string",
                                "pattern": rules.printable_any(1, rules.REFERENCE_ID_MAX),
                            },
                        }
                    ],
                    "responses": {
                        "200": _json("UserList", "Links with this reference id"),
                        **_error_responses(400, 401, 403),
                    },
                }
            },
            "/users/{user_id}": {
                "get": {
                    "operationId": "getUser",
                    "description": _permission("read"),
                    "parameters": [_USER_ID],
                    "responses": {
                        "200": _json("User", "The link"),
                        **_error_responses(400, 401, 403, 404),
                    },
                },
                "delete": {
                    "operationId": "disconnectUser",
                    "description": _permission("write") + " Revokes at WHOOP and wipes the "
                    "tokens; the link stays, with status revoked. Repeating it is a no-op.",
                    "parameters": [_USER_ID],
                    "responses": {
                        "200": _json("User", "The link, now revoked"),
                        **_error_responses(400, 401, 403, 404),
                    },
                },
            },
            "/users/{user_id}/backfill": {
                "post": {
                    "operationId": "backfillUser",
                    "description": _permission("write"),
                    "parameters": [_USER_ID],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/BackfillRequest"}
                            }
                        },
                    },
                    "responses": {
                        "202": _json("Backfill", "The backfill is queued"),
                        **_error_responses(400, 401, 403, 404, 409, 415, 422),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "security": [],
                    "responses": {"200": {"description": "This document"}},
                }
            },
        },
    }
    # Issue 17: erasure and export operations (their packages own their parts).
    from whoopadmin.erasure.openapi import extend as erasure_operations

    erasure_operations(doc, _error_responses, _json, _USER_ID, _permission)
    from whoopadmin.exports.openapi import extend as export_operations

    export_operations(doc, _error_responses, _USER_ID, _permission)
    return doc
