"""The input rules of ``/api/v1`` in one place: the OpenAPI document states them and the
views apply them, so the two cannot drift apart (schemathesis checks that they agree).

Patterns are written for both JSON Schema and Python's ``re``: anchored with ``^…$`` and
applied with ``re.fullmatch`` (so ``$`` cannot match before a final newline). "Printable"
is ``whoopadmin.printable``'s rule; a lone surrogate (never in UTF-8 text) is refused too.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from whoopadmin.printable import forbidden_class, is_printable
from whoopadmin.setup.service import ENVIRONMENT_RE


def printable_text() -> str:
    """Printable characters, at least one of them not a space (surrounding spaces allowed)."""
    bad = forbidden_class()
    return f"^[^{bad}]*[^{bad}\\x20][^{bad}]*$"


def printable_any(low: int = 0, high: int | None = None) -> str:
    """Printable characters (spaces alone included), ``low``-``high`` of them."""
    count = "*" if (low, high) == (0, None) else f"{{{low},{'' if high is None else high}}}"
    return f"^[^{forbidden_class()}]{count}$"


def visible_only(high: int | None = None) -> str:
    """Printable characters and no space: a URL as sent, or nothing (at most ``high``)."""
    count = "*" if high is None else f"{{0,{high}}}"
    return f"^[^{forbidden_class()}\\x20]{count}$"


USER_ID = r"^[0-9a-f]{32}$"
ENVIRONMENT = ENVIRONMENT_RE.pattern
LANGUAGE = r"^(?:[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,3})?$"
LANGUAGE_MAX = 16
MAX_ID = 2**31 - 1  # the largest id an INTEGER primary key holds (PostgreSQL's int4)
REFERENCE_ID_MAX = 255
REDIRECT_URL_MAX = 2048
DATE_TIME_MAX = 40
EXPIRES_IN = (60, 7 * 24 * 3600)
# Days of history a connect session's backfill may fetch (as a connection's setting).
BACKFILL_DAYS = (1, 365)
GRACE_DAYS = r"^(?:[0-9]|[1-8][0-9]|90)$"  # 0 to retention.models.MAX_GRACE_DAYS, no sign
# The instants a backfill window may touch; beyond them datetime arithmetic overflows.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def matches(pattern: str, value: str) -> bool:
    """Whether ``value`` matches the whole of ``pattern`` (as the document's validators do)."""
    return re.fullmatch(pattern, value) is not None


def text_matches(pattern: str, value: str) -> bool:
    """``matches`` for the printable-text patterns, lone surrogates refused as well."""
    return is_printable(value) and matches(pattern, value)


def is_id(value) -> bool:
    """A JSON integer (not a boolean) that can be a row id."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


def is_whole(value) -> bool:
    """A JSON integer (not a boolean)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_reference_id(value) -> bool:
    """1-255 printable characters, not all spaces (the spaces around it are trimmed later)."""
    return (
        isinstance(value, str)
        and 1 <= len(value) <= REFERENCE_ID_MAX
        and text_matches(printable_text(), value)
    )


# RFC 3339 ``date-time`` (what OpenAPI's ``format: date-time`` means): ``T`` and ``Z`` in
# either case, any number of fraction digits, a leap second allowed.
_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


class OutOfRange(ValueError):
    """A well-formed date-time outside the instants the API works with."""


def parse_date_time(value: str) -> datetime:
    """An RFC 3339 date-time as an aware UTC datetime.

    ValueError when it is not one; OutOfRange (a ValueError) when it is one but lies before
    1970 or after 9998 (UTC).
    """
    match = _DATE_TIME.fullmatch(value) if len(value) <= DATE_TIME_MAX else None
    if match is None:
        raise ValueError("not an RFC 3339 date-time")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction, zulu, sign, off_hours, off_minutes = match.group(7, 8, 9, 10, 11)
    if off_hours is not None and (int(off_hours) > 23 or int(off_minutes) > 59):
        raise ValueError("bad offset")
    if hour > 23 or minute > 59 or second > 60:
        raise ValueError("bad time")
    micro = int((fraction or ".0")[1:7].ljust(6, "0"))
    # Checks the month and the day of the month (ValueError); datetime has no year 0, but
    # 0000 is a leap year like 2000.
    datetime(year or 2000, month, day)
    if not EARLIEST.year <= year < LATEST.year:
        raise OutOfRange("outside 1970-9998")
    offset = timedelta(0)
    if not zulu:
        offset = timedelta(hours=int(off_hours), minutes=int(off_minutes))
        offset = -offset if sign == "-" else offset
    # A leap second (hh:mm:60) counts as the last instant of its minute.
    if second == 60:
        second, micro = 59, 999999
    moment = datetime(year, month, day, hour, minute, second, micro, tzinfo=timezone(offset))
    moment = moment.astimezone(UTC)
    if not EARLIEST <= moment < LATEST:
        raise OutOfRange("outside 1970-9998")
    return moment
