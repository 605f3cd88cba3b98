"""The export operation's part of the OpenAPI document (api/openapi.py)."""

from __future__ import annotations

from typing import Any

from whoopadmin.exports.service import FORMATS, LOCAL_CODES


def extend(doc: dict[str, Any], errors, user_id_param, permission) -> None:
    """Add ``GET /users/{user_id}/export``."""
    doc["paths"]["/users/{user_id}/export"] = {
        "get": {
            "operationId": "exportUser",
            "description": permission("read") + " One user's stored data, streamed as a "
            "download. format=csv: a zip with one CSV per type (sleep.csv, recovery.csv, "
            "cycle.csv, workout.csv, body.csv): provider, user_id, id, start, end, "
            "timezone_offset, score_state, updated_at, then one column per indicator of the "
            "type (names and units as in the deliveries). format=ndjson: one JSON object per "
            'line and record: provider ("whoop"), user_id, type, id, start, end, '
            "timezone_offset, score_state, updated_at, indicators [{name, value, unit}] and "
            "raw (the WHOOP object). format=fhir: a FHIR R4 Bundle of type collection with "
            "one Observation per indicator, coded with LOINC where a code exists and always "
            f"with {LOCAL_CODES}, values in UCUM units. Audit-logged (link.export). 409 "
            "erasure_pending while the user's erasure is scheduled; 410 user_erased after.",
            "parameters": [
                user_id_param,
                {
                    "name": "format",
                    "in": "query",
                    "required": True,
                    "description": "csv (a zip), ndjson or fhir.",
                    "schema": {"type": "string", "enum": list(FORMATS)},
                },
            ],
            "responses": {
                "200": {
                    "description": "The export, as an attachment (Content-Disposition).",
                    "content": {
                        "application/zip": {"schema": {"type": "string", "format": "binary"}},
                        "application/x-ndjson": {"schema": {"type": "string"}},
                        "application/fhir+json": {
                            "schema": {
                                "type": "object",
                                "required": ["resourceType", "type", "entry"],
                                "properties": {
                                    "resourceType": {"type": "string", "enum": ["Bundle"]},
                                    "type": {"type": "string", "enum": ["collection"]},
                                    "entry": {"type": "array", "items": {"type": "object"}},
                                },
                            }
                        },
                    },
                },
                **errors(400, 401, 403, 404, 409, 410),
            },
        }
    }
