"""The OpenAPI 3.0 document of ``/api/v1`` (kept beside the views; a test checks they match)."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "field": {"type": "string"},
    },
}

_USER = {
    "type": "object",
    "required": ["user_id", "reference_id", "connection", "whoop_user_id", "status", "scopes"],
    "properties": {
        "user_id": {"type": "string"},
        "reference_id": {"type": "string"},
        "connection": {"type": "string"},
        "whoop_user_id": {"type": "integer", "format": "int64"},
        "status": {"type": "string", "enum": ["active", "reauth_required", "revoked", "error"]},
        "status_reason": {"type": "string", "nullable": True},
        "scopes": {"type": "array", "items": {"type": "string"}},
        "connected_at": {"type": "string", "format": "date-time", "nullable": True},
        "revoked_at": {"type": "string", "format": "date-time", "nullable": True},
        "created_at": {"type": "string", "format": "date-time", "nullable": True},
    },
}


def _error_responses(*codes: int) -> dict[str, Any]:
    return {
        str(code): {
            "description": "Error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code in codes
    }


def _json(ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


_USER_ID = {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}


def document() -> dict[str, Any]:
    """Return the OpenAPI document."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "whoopadmin API",
            "version": "1.0.0",
            "description": "Create connect links and read or disconnect WHOOP links. "
            "Authenticate with 'Authorization: Bearer <API key>'.",
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
                    "properties": {
                        "users": {"type": "array", "items": {"$ref": "#/components/schemas/User"}}
                    },
                },
                "ConnectSessionRequest": {
                    "type": "object",
                    "required": ["connection", "reference_id"],
                    "additionalProperties": False,
                    "properties": {
                        "connection": {
                            "oneOf": [
                                {"type": "integer", "minimum": 1},
                                {"type": "string", "minLength": 1, "maxLength": 64},
                            ],
                            "description": "The connection's id or environment name.",
                        },
                        "reference_id": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 255,
                            "description": "Printable characters; surrounding spaces are trimmed.",
                        },
                        "success_redirect_url": {"type": "string", "maxLength": 2048},
                        "failure_redirect_url": {"type": "string", "maxLength": 2048},
                        "language": {"type": "string"},
                        "expires_in": {"type": "integer", "minimum": 60, "maximum": 604800},
                    },
                },
                "BackfillRequest": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "start": {"type": "string", "format": "date-time"},
                        "end": {"type": "string", "format": "date-time"},
                    },
                },
                "Backfill": {
                    "type": "object",
                    "required": ["user_id", "start", "end", "status"],
                    "properties": {
                        "user_id": {"type": "string"},
                        "start": {"type": "string", "format": "date-time"},
                        "end": {"type": "string", "format": "date-time"},
                        "status": {"type": "string", "enum": ["queued"]},
                    },
                },
                "ConnectSession": {
                    "type": "object",
                    "required": ["session_id", "url", "expires_at"],
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
                        **_error_responses(400, 401, 403, 404, 409),
                    },
                }
            },
            "/users": {
                "get": {
                    "operationId": "listUsers",
                    "parameters": [
                        {
                            "name": "reference_id",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
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
                    "parameters": [_USER_ID],
                    "responses": {
                        "200": _json("User", "The link"),
                        **_error_responses(400, 401, 403, 404),
                    },
                },
                "delete": {
                    "operationId": "disconnectUser",
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
                        **_error_responses(400, 401, 403, 404, 409),
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
