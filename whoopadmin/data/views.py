"""The data API's views: ``/api/v1/users/<id>/<type>``, ``/daily`` and ``/status``.

Part of ``/api/v1`` (a blueprint nested in the API's, registered in ``api/views.py``):
the same key check (``read``), the same errors, documented in ``data/openapi.py``.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from flask import Blueprint, jsonify, request
from werkzeug.routing import BaseConverter

from whoopadmin.api import rules
from whoopadmin.api.access import api_key_required, error, not_found, visible_link
from whoopadmin.audit import utcnow
from whoopadmin.data import service
from whoopadmin.extensions import csrf

bp = Blueprint("data", __name__)
csrf.exempt(bp)  # API calls carry a bearer key, not a browser session


class DataTypeConverter(BaseConverter):
    """A path segment that is one of the data types (``<datatype:data_type>``).

    Any other segment is no route at all (404): ``/users/<id>/backfill`` stays POST only.
    """

    regex = "(?:" + "|".join(service.TYPES) + ")"


bp.record_once(lambda state: state.app.url_map.converters.setdefault("datatype", DataTypeConverter))

DATE = r"^\d{4}-\d{2}-\d{2}$"
LIMIT = r"^[0-9]{1,3}$"


class Refused(Exception):
    """An answer other than 200, found while reading the request."""

    def __init__(self, response) -> None:
        super().__init__("refused")
        self.response = response


def _bad(exc: service.DataError) -> Refused:
    return Refused(error(400, exc.code, str(exc), exc.field))


def _user(user_id: str):
    """The visible link, after the request's input was checked (404 otherwise)."""
    link = visible_link(user_id)
    if link is None:
        raise Refused(not_found())
    return link


def _check_user_id(user_id: str) -> None:
    if not user_id.isprintable():
        raise Refused(error(400, "invalid_request", "user_id is not a valid user id.", "user_id"))


def _date_time(name: str) -> datetime | None:
    value = request.args.get(name)
    if value is None:
        return None
    example = "an RFC 3339 date-time, e.g. 2026-01-31T00:00:00Z"
    try:
        return rules.parse_date_time(value)
    except rules.OutOfRange:
        raise _bad(
            service.DataError(
                f"{name} must be between 1970 and 9998 (UTC).", name, "invalid_window"
            )
        ) from None
    except ValueError:
        raise _bad(service.DataError(f"{name} must be {example}.", name)) from None


def _date(name: str) -> date | None:
    value = request.args.get(name)
    if value is None:
        return None
    try:
        if not re.fullmatch(DATE, value):
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        raise _bad(service.DataError(f"{name} must be a date, e.g. 2026-01-31.", name)) from None
    if not rules.EARLIEST.year <= day.year < rules.LATEST.year:
        raise _bad(
            service.DataError(f"{name} must be between 1970 and 9998.", name, "invalid_window")
        )
    return day


def _format() -> str:
    value = request.args.get("format", "normalised")
    if value not in service.FORMATS:
        raise _bad(
            service.DataError(f"format must be one of {', '.join(service.FORMATS)}.", "format")
        )
    return value


def _limit() -> int:
    value = request.args.get("limit")
    if value is None:
        return service.DEFAULT_LIMIT
    if not re.fullmatch(LIMIT, value) or not 1 <= int(value) <= service.MAX_LIMIT:
        raise _bad(
            service.DataError(
                f"limit must be a whole number from 1 to {service.MAX_LIMIT}.", "limit"
            )
        )
    return int(value)


@bp.get("/users/<user_id>/<datatype:data_type>")
@api_key_required("read")
def records(user_id: str, data_type: str):
    """A page of one user's stored records of one data type."""
    try:
        _check_user_id(user_id)
        start, end = _date_time("start"), _date_time("end")
        fmt, limit = _format(), _limit()
        cursor = request.args.get("cursor")
        try:
            start, end = service.window(start, end, utcnow())
        except service.DataError as exc:
            raise _bad(exc) from None
        link = _user(user_id)
        try:
            page = service.records_page(
                link, data_type, start, end, fmt=fmt, limit=limit, cursor=cursor
            )
        except service.DataError as exc:
            raise _bad(exc) from None
    except Refused as refused:
        return refused.response
    return jsonify(
        provider=service.PROVIDER,
        user_id=link.uid,
        type=data_type,
        format=fmt,
        start=service.iso(start),
        end=service.iso(end),
        records=page.records,
        next_cursor=page.next_cursor,
    )


@bp.get("/users/<user_id>/daily")
@api_key_required("read")
def daily(user_id: str):
    """One row per day: that day's cycle, main sleep, recovery and workouts."""
    try:
        _check_user_id(user_id)
        first, last = _date("start"), _date("end")
        try:
            first, last = service.day_window(first, last, utcnow().date())
        except service.DataError as exc:
            raise _bad(exc) from None
        link = _user(user_id)
    except Refused as refused:
        return refused.response
    return jsonify(
        provider=service.PROVIDER,
        user_id=link.uid,
        start=first.isoformat(),
        end=last.isoformat(),
        units=service.DAILY_UNITS,
        days=service.daily(link, first, last),
    )


@bp.get("/users/<user_id>/status")
@api_key_required("read")
def status(user_id: str):
    """Per data type the sync state; the last webhook; the newest backfill's progress."""
    try:
        _check_user_id(user_id)
        link = _user(user_id)
    except Refused as refused:
        return refused.response
    return jsonify(service.status(link))
