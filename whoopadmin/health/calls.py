"""Counting every WHOOP call per connection, per (UTC) day and purpose, in Redis.

Every API request (each attempt, as WHOOP's rate limit counts it) and every token or
revocation call is counted once, under the purpose that caused it. The counts are
``HINCRBY`` on one hash per connection and day (``whoopadmin:calls:<id>:<YYYYMMDD>``),
kept ``KEEP_DAYS`` days: one round trip per call, no database write in the middle of a
sync. The budget forecast and the health page read them; capacity benchmarks (calls per
member per day) build on them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta

from whoopadmin.audit import utcnow
from whoopadmin.redisconn import get_redis

log = logging.getLogger(__name__)

KEY_PREFIX = "whoopadmin:calls"
KEEP_DAYS = 9
# Purposes, and which of them may use the whole rate budget (the rest leave a reserve).
WEBHOOK = "webhook"  # fetching what a webhook named
REFRESH = "refresh"  # token refreshes (WHOOP's token endpoint)
CONNECT = "connect"  # the code exchange and the profile read of a connect
REVOKE = "revoke"  # DELETE /v2/user/access when a link is disconnected
PROBE = "probe"  # the wizard's credentials check
BACKFILL = "backfill"  # the backfill on connect
RECONCILE = "reconcile"  # the daily (or, for silent connections, hourly) reconciliation
RESYNC = "resync"  # support's re-sync and the API's backfill requests
PURPOSES = (WEBHOOK, REFRESH, CONNECT, REVOKE, PROBE, BACKFILL, RECONCILE, RESYNC)
LOW_PRIORITY = frozenset({BACKFILL, RECONCILE, RESYNC})


def _key(connection_id: int, day: date) -> str:
    return f"{KEY_PREFIX}:{connection_id}:{day:%Y%m%d}"


def count(connection_id: int, purpose: str, n: int = 1, now: datetime | None = None) -> None:
    """Count ``n`` WHOOP calls made for ``purpose``; never raises (counting must not break work)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    key = _key(connection_id, (now or utcnow()).date())
    try:
        with get_redis().pipeline(transaction=False) as pipe:
            pipe.hincrby(key, purpose, n)
            pipe.expire(key, KEEP_DAYS * 86_400)
            pipe.execute()
    except Exception as exc:
        log.warning("could not count a WHOOP call (%s): %s", purpose, type(exc).__name__)


def meter(connection_id: int, purpose: str) -> Callable[[], None]:
    """A ``WhoopClient`` meter: counts one call for ``purpose`` each time it is called."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    return lambda: count(connection_id, purpose)


def by_day(connection_id: int, days: int = 7, now: datetime | None = None) -> list[dict]:
    """The last ``days`` days (today first): ``{"day", "total", "purposes": {...}}``."""
    today = (now or utcnow()).date()
    wanted = [today - timedelta(days=n) for n in range(days)]
    redis = get_redis()
    with redis.pipeline(transaction=False) as pipe:
        for day in wanted:
            pipe.hgetall(_key(connection_id, day))
        raw = pipe.execute()
    out = []
    for day, fields in zip(wanted, raw, strict=True):
        purposes = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in fields.items()}
        out.append({"day": day, "total": sum(purposes.values()), "purposes": purposes})
    return out


def today(connection_id: int, now: datetime | None = None) -> dict[str, int]:
    """Today's calls by purpose."""
    return by_day(connection_id, 1, now)[0]["purposes"]
