"""The data API's part of the OpenAPI document (``api/openapi.py`` adds it with ``extend``)."""

from __future__ import annotations

from typing import Any

from whoopadmin.api import rules
from whoopadmin.data import service
from whoopadmin.data.models import BACKFILL_STATUSES, BACKFILL_TRIGGERS

PROVIDER = {
    "type": "string",
    "enum": [service.PROVIDER],
    "description": "Where the data comes from. WHOOP is the first provider; a client should "
    "expect others.",
}
DATA_TYPES = list(service.TYPES)
_STAMP = {"type": "string", "format": "date-time"}
_STAMP_OR_NULL = {"type": "string", "format": "date-time", "nullable": True}
_TEXT_OR_NULL = {"type": "string", "nullable": True}
_NUMBER_OR_NULL = {"type": "number", "nullable": True}


def _obj(properties: dict[str, Any], required=None, **extra) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
        "properties": properties,
        **extra,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


INDICATOR = _obj(
    {
        "name": {"type": "string", "description": "The indicator's name, as in the data events."},
        "value": {
            "oneOf": [{"type": "number"}, {"type": "boolean"}, {"type": "string"}],
            "description": "A number in ``unit``; true/false for unit bool; text when unit is "
            "null (workout_sport).",
        },
        "unit": _TEXT_OR_NULL,
    }
)

RECORD = _obj(
    {
        "provider": _ref("Provider"),
        "type": {"type": "string", "enum": DATA_TYPES},
        "id": {
            "type": "string",
            "description": "The record's id at the provider: the data events' whoop_id (a "
            "recovery has its sleep's id; the body measurement the provider's user id).",
        },
        "start": {**_STAMP_OR_NULL, "description": "As the provider sent it (null: none)."},
        "end": {**_STAMP_OR_NULL, "description": "Null for the current cycle."},
        "timezone_offset": _TEXT_OR_NULL,
        "score_state": _TEXT_OR_NULL,
        "updated_at": _STAMP_OR_NULL,
        "deleted": {
            "type": "boolean",
            "description": "Deleted at the provider (kept so a client can drop it; no indicators).",
        },
        "fetched_at": _STAMP,
        "indicators": {
            "type": "array",
            "items": _ref("Indicator"),
            "description": "format normalised or both: the normalised indicators, as in the "
            "data events.",
        },
        "raw": {
            "type": "object",
            "additionalProperties": True,
            "description": "format raw or both: the object as the provider sent it.",
        },
    },
    required=[
        "provider",
        "type",
        "id",
        "start",
        "end",
        "timezone_offset",
        "score_state",
        "updated_at",
        "deleted",
        "fetched_at",
    ],
)

RECORD_PAGE = _obj(
    {
        "provider": _ref("Provider"),
        "user_id": {"type": "string", "pattern": rules.USER_ID},
        "type": {"type": "string", "enum": DATA_TYPES},
        "format": {"type": "string", "enum": list(service.FORMATS)},
        "start": _STAMP,
        "end": _STAMP,
        "records": {"type": "array", "items": _ref("Record")},
        "next_cursor": {
            "type": "string",
            "nullable": True,
            "description": "Pass as cursor (with the same start and end) for the next page; "
            "null on the last page.",
        },
    }
)

_DAILY_NUMBERS = {
    field: {**_NUMBER_OR_NULL, "description": f"Unit: {unit}."}
    for field, unit in service.DAILY_UNITS.items()
    if field not in ("nap_count", "workout_count")
}

DAILY_ROW = _obj(
    {
        "date": {"type": "string", "format": "date", "description": "The member's local day."},
        "provider": _ref("Provider"),
        "cycle_id": _TEXT_OR_NULL,
        "sleep_id": {**_TEXT_OR_NULL, "description": "The day's main sleep (not a nap)."},
        "recovery_id": _TEXT_OR_NULL,
        "workout_ids": {"type": "array", "items": {"type": "string"}},
        **_DAILY_NUMBERS,
        "nap_count": {"type": "integer", "minimum": 0},
        "workout_count": {"type": "integer", "minimum": 0},
    }
)

DAILY = _obj(
    {
        "provider": _ref("Provider"),
        "user_id": {"type": "string", "pattern": rules.USER_ID},
        "start": {"type": "string", "format": "date"},
        "end": {"type": "string", "format": "date"},
        "units": _obj({field: {"type": "string"} for field in service.DAILY_UNITS}),
        "days": {"type": "array", "items": _ref("DailyRow")},
    }
)

TYPE_STATUS = _obj(
    {
        "type": {"type": "string", "enum": DATA_TYPES},
        "records": {"type": "integer", "minimum": 0, "description": "Stored, not deleted."},
        "newest_record_start": _STAMP_OR_NULL,
        "last_successful_sync": _obj(
            {
                "at": _STAMP,
                "reason": {"type": "string"},
                "records": {"type": "integer", "minimum": 0},
            },
            nullable=True,
        ),
        "last_error": _obj(
            {"at": _STAMP, "reason": {"type": "string"}, "error": {"type": "string"}},
            nullable=True,
        ),
    }
)

BACKFILL_PROGRESS = _obj(
    {
        "id": {"type": "integer"},
        "status": {"type": "string", "enum": list(BACKFILL_STATUSES)},
        "trigger": {
            "type": "string",
            "enum": list(BACKFILL_TRIGGERS),
            "description": "connect: after a member's consent; request: asked for (API, support).",
        },
        "window": _obj({"start": _STAMP, "end": _STAMP}),
        "progress": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "0-1: data types done, plus how far back the current one got.",
        },
        "current_type": {"type": "string", "enum": [*DATA_TYPES, None], "nullable": True},
        "counts": _obj({t: {"type": "integer", "minimum": 0} for t in DATA_TYPES}),
        "attempts": {"type": "integer", "minimum": 0},
        "error": {
            **_TEXT_OR_NULL,
            "description": "Why it failed, or why the last try failed (it is retried).",
        },
        "queued_at": _STAMP,
        "started_at": _STAMP_OR_NULL,
        "finished_at": _STAMP_OR_NULL,
    },
    nullable=True,
    description="The user's newest backfill (null: none yet).",
)

STATUS = _obj(
    {
        "provider": _ref("Provider"),
        "user_id": {"type": "string", "pattern": rules.USER_ID},
        "status": {"type": "string", "enum": ["active", "reauth_required", "revoked", "error"]},
        "types": {"type": "array", "items": _ref("TypeStatus")},
        "last_webhook": _obj(
            {
                "received_at": _STAMP,
                "type": {"type": "string"},
                "status": {"type": "string"},
                "processed_at": _STAMP_OR_NULL,
            },
            nullable=True,
        ),
        "backfill": _ref("BackfillProgress"),
    }
)

HISTORICAL_EVENT = _obj(
    {
        "provider": PROVIDER,
        "backfill_id": {"type": "integer"},
        "trigger": {"type": "string", "enum": list(BACKFILL_TRIGGERS)},
        "window": _obj({"start": _STAMP, "end": _STAMP}),
        "counts": _obj({t: {"type": "integer", "minimum": 0} for t in DATA_TYPES}),
        "started_at": _STAMP_OR_NULL,
        "finished_at": _STAMP,
        "reason": {"type": "string", "description": "historical.failed only: a code."},
        "message": {"type": "string", "description": "historical.failed only."},
    },
    required=["provider", "backfill_id", "trigger", "window", "counts", "started_at"],
    description="Not an answer of this API: the data of the historical.completed and "
    "historical.failed events delivered to destinations (reason and message: failed only).",
)

SCHEMAS = {
    "Provider": PROVIDER,
    "Indicator": INDICATOR,
    "Record": RECORD,
    "RecordPage": RECORD_PAGE,
    "DailyRow": DAILY_ROW,
    "Daily": DAILY,
    "TypeStatus": TYPE_STATUS,
    "BackfillProgress": BACKFILL_PROGRESS,
    "Status": STATUS,
    "HistoricalEventData": HISTORICAL_EVENT,
}

# What 400 and 404 mean on these operations (beside the API's general meanings).
DATA_400 = (
    "invalid_request: a parameter breaks this document (field names it); invalid_window: "
    f"start after end, more than {service.MAX_WINDOW_DAYS} days, or outside 1970-9998; "
    "invalid_cursor: a cursor this API did not give for this query."
)
DATA_404 = (
    "No such user, or one on a connection the key may not act on: the two answer alike "
    "(not_found). The records operation: also a data_type that is none of the five (no "
    "such route: page_not_found)."
)


def _window_parameter(name: str, fmt: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string", "format": fmt, "maxLength": rules.DATE_TIME_MAX},
    }


# The data API's paths (tests/data/test_data_openapi.py drives each to each status).
PATHS = ("/users/{user_id}/{data_type}", "/users/{user_id}/daily", "/users/{user_id}/status")


def paths(user_id: dict, errors, json, permission) -> dict[str, Any]:
    """The data API's paths (the API document's helpers passed in)."""

    def responses(ok: str, description: str, *codes: int) -> dict[str, Any]:
        out = {"200": json(ok, description), **errors(*codes)}
        for code, text in ((400, DATA_400), (404, DATA_404)):
            if str(code) in out:
                out[str(code)] = {**out[str(code)], "description": text}
        return out

    data_type = {
        "name": "data_type",
        "in": "path",
        "required": True,
        "description": "The data type. body: the current body measurement (one, whatever "
        "the window).",
        "schema": {"type": "string", "enum": DATA_TYPES},
    }
    return {
        "/users/{user_id}/{data_type}": {
            "get": {
                "operationId": "listRecords",
                "description": permission("read") + " One user's stored records of one type "
                "whose own start time is in [start, end) (a recovery: when it was created), "
                "oldest first, a page at a time.",
                "parameters": [
                    user_id,
                    data_type,
                    _window_parameter(
                        "start",
                        "date-time",
                        f"RFC 3339. Default: {service.DEFAULT_WINDOW_DAYS} days before end.",
                    ),
                    _window_parameter("end", "date-time", "RFC 3339, exclusive. Default: now."),
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "description": "normalised (default): indicators; raw: the provider's "
                        "object; both.",
                        "schema": {"type": "string", "enum": list(service.FORMATS)},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "description": f"Records per page (default {service.DEFAULT_LIMIT}).",
                        "schema": {"type": "integer", "minimum": 1, "maximum": service.MAX_LIMIT},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "required": False,
                        "description": "The next_cursor of the previous page, with the same "
                        "start and end (opaque).",
                        "schema": {"type": "string", "maxLength": service.CURSOR_MAX},
                    },
                ],
                "responses": responses("RecordPage", "A page of records", 400, 401, 403, 404),
            }
        },
        "/users/{user_id}/daily": {
            "get": {
                "operationId": "listDays",
                "description": permission("read") + " One row per local day with data: the "
                "cycle that day (strain, energy, heart rate), its main sleep and recovery, "
                "the naps and workouts.",
                "parameters": [
                    user_id,
                    _window_parameter(
                        "start",
                        "date",
                        f"First day. Default: {service.DEFAULT_WINDOW_DAYS - 1} days before end.",
                    ),
                    _window_parameter("end", "date", "Last day (inclusive). Default: today (UTC)."),
                ],
                "responses": responses("Daily", "The days", 400, 401, 403, 404),
            }
        },
        "/users/{user_id}/status": {
            "get": {
                "operationId": "getUserStatus",
                "description": permission("read") + " Per data type the records, the newest "
                "one, the last successful sync and the last error; the last webhook; the "
                "newest backfill with its window and progress.",
                "parameters": [user_id],
                "responses": responses("Status", "The user's sync status", 400, 401, 403, 404),
            }
        },
    }
