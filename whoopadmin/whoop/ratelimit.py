"""One WHOOP rate-limit budget per app (client id), shared by every worker process via Redis.

WHOOP counts requests per *app* (all its members together): 100 a minute and 10,000 a
day by default. Every process that talks to WHOOP for an app asks the same
``RateBudget`` for permission first, so together they never exceed the limit.

Design
------
* **Fixed windows** (a minute and a day), timed by the Redis server's clock (``TIME``
  inside the scripts) so every machine agrees whatever its own clock says. A new app's
  windows are aligned to the epoch (``floor(now / 60)``), as WHOOP's appear to be; every
  response's ``X-RateLimit-Reset`` then *anchors* the window's end to WHOOP's (when it is
  more than 1.5 s away from ours), and later windows keep that phase. So the budget
  follows WHOOP's windows even if clocks or phases differ. (A sliding window would be
  stricter than WHOOP and waste budget; fixed windows match what WHOOP enforces.)
* **Atomic**: a Lua script checks the pause, both windows and the caps, and counts the
  request in one step, so concurrent processes can never overspend (no read-then-write
  race). The state is one Redis hash per app,
  ``whoopadmin:ratelimit:<app_key>:state``, with a TTL refreshed on every write (two day
  windows), so an app that stops calling leaves nothing behind.
* ``observe(headers)`` reads ``X-RateLimit-Limit`` (``100, 100;window=60,
  10000;window=86400``), ``-Remaining`` and ``-Reset``: WHOOP's limits cap the configured
  ones (never raise them), WHOOP's count raises ours (never lowers it: ours includes
  requests still in flight), and ``Remaining: 0`` pauses the app until the reset.
* ``pause_until(ts)`` / ``pause_for(seconds)`` after a 429: every worker defers this
  app's calls until then.
* ``acquire(timeout)`` waits for budget; if the budget cannot come back within the
  timeout it raises ``BudgetExhausted`` at once (with ``retry_after``) instead of
  sleeping in vain, so a job can be re-queued for later.
* **Priorities**: a budget built with ``reserve=0.2`` (low-priority work: backfill,
  reconciliation) may only spend each window down to that share of its limit; the rest
  is kept for callers without a reserve (webhook-driven fetches). The same Redis state
  serves both, so when the budget runs short the urgent work still gets through.
* The minute window's use is also kept for the window just ended (``m_prev``), so a
  once-a-minute reader sees a full minute's use, not the few requests of a new one.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Mapping
from typing import Any

from .api import WhoopError

KEY_PREFIX = "whoopadmin:ratelimit"
# WHOOP's X-RateLimit-Reset is whole seconds (rounded up): ends this close are one window.
OBSERVE_TOLERANCE_MS = 1500

# Shared by the scripts: the Redis clock in ms, and rolling a window forward. A window is
# (end, used); an app seen for the first time gets epoch-aligned windows, later ones keep
# the phase of the last end (which observe() may have anchored to WHOOP's reset).
_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function roll(e, u, len)
  if e == nil then return (math.floor(now / len) + 1) * len, 0 end
  if now >= e then return e + (math.floor((now - e) / len) + 1) * len, 0 end
  return e, (u or 0)
end
"""

# KEYS[1] = the app's hash. ARGV: minute length (ms), day length (ms), configured per-minute
# and per-day limits, TTL (ms), the caller's reserve (a share of each limit it must leave
# to callers without one). Returns {1, 0, 0} when a request was counted, else {0, ms to
# wait, 1 if only the reserve stood in the way}. TIME makes the script non-deterministic,
# which Redis >= 5 allows (effects replication is the default).
_ACQUIRE = (
    _PRELUDE
    + """
local m_len, d_len = tonumber(ARGV[1]), tonumber(ARGV[2])
local m_lim, d_lim = tonumber(ARGV[3]), tonumber(ARGV[4])
local reserve = tonumber(ARGV[6]) or 0
local h = redis.call('HMGET', KEYS[1], 'm_end', 'm_used', 'd_end', 'd_used',
                      'paused_until', 'm_cap', 'd_cap')
local paused = tonumber(h[5]) or 0
if paused > now then return {0, paused - now, 0} end
local me0, mu0 = tonumber(h[1]), tonumber(h[2])
local me, mu = roll(me0, mu0, m_len)
if me0 ~= nil and me ~= me0 then
  -- A new minute: keep the use of the one just ended (0 if minutes passed unused).
  local prev = 0
  if now < me0 + m_len then prev = mu0 or 0 end
  redis.call('HSET', KEYS[1], 'm_prev', prev)
end
local de, du = roll(tonumber(h[3]), tonumber(h[4]), d_len)
local m_cap, d_cap = tonumber(h[6]), tonumber(h[7])
if m_cap and m_cap < m_lim then m_lim = m_cap end
if d_cap and d_cap < d_lim then d_lim = d_cap end
local m_own, d_own = m_lim, d_lim
if reserve > 0 then
  m_own = m_lim - math.floor(m_lim * reserve)
  d_own = d_lim - math.floor(d_lim * reserve)
end
if mu >= m_own or du >= d_own then
  -- Remember the rolled windows so usage() and the next caller agree; wait for the
  -- later of the blocking windows' ends.
  redis.call('HSET', KEYS[1], 'm_end', me, 'm_used', mu, 'd_end', de, 'd_used', du)
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  local wait = 0
  if mu >= m_own then wait = me - now end
  if du >= d_own and de - now > wait then wait = de - now end
  local reserved = 0
  if mu < m_lim and du < d_lim then reserved = 1 end
  return {0, wait, reserved}
end
redis.call('HSET', KEYS[1], 'm_end', me, 'm_used', mu + 1, 'd_end', de, 'd_used', du + 1)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, 0, 0}
"""
)

# ARGV: minute length, day length (ms), TTL (ms), then the observation: minute cap, day
# cap ('' = unknown), which window Remaining describes ('m', 'd' or ''), WHOOP's used
# count in it, remaining, reset (ms), tolerance (ms). Caps are replaced; counts are only
# ever raised (ours include requests still in flight). WHOOP's reset re-anchors the
# window's end when it is more than the tolerance away from ours (clocks or phases
# differ); within the tolerance the later end wins, as resets are whole seconds.
_OBSERVE = (
    _PRELUDE
    + """
local m_len, d_len = tonumber(ARGV[1]), tonumber(ARGV[2])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'm_cap', ARGV[4]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'd_cap', ARGV[5]) end
local which = ARGV[6]
local reset = tonumber(ARGV[9])
if which ~= '' then
  local len = m_len
  if which == 'd' then len = d_len end
  local h = redis.call('HMGET', KEYS[1], which .. '_end', which .. '_used')
  local e, u = roll(tonumber(h[1]), tonumber(h[2]), len)
  local used = tonumber(ARGV[7])
  if used > u then u = used end
  local new_end = now + reset
  if math.abs(new_end - e) > tonumber(ARGV[10]) or new_end > e then e = new_end end
  redis.call('HSET', KEYS[1], which .. '_end', e, which .. '_used', u)
end
if tonumber(ARGV[8]) == 0 then
  local untl = now + reset
  local paused = tonumber(redis.call('HGET', KEYS[1], 'paused_until')) or 0
  if untl > paused then redis.call('HSET', KEYS[1], 'paused_until', untl) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
)

# ARGV: absolute pause end in ms (or '' for relative), relative ms, TTL (ms).
_PAUSE = (
    _PRELUDE
    + """
local untl = tonumber(ARGV[1])
if untl == nil then untl = now + tonumber(ARGV[2]) end
local paused = tonumber(redis.call('HGET', KEYS[1], 'paused_until')) or 0
if untl > paused then redis.call('HSET', KEYS[1], 'paused_until', untl) end
local ttl = tonumber(ARGV[3])
if untl - now + 60000 > ttl then ttl = untl - now + 60000 end
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return untl
"""
)

_POLICY = re.compile(r"^\s*(\d+)\s*;\s*w(?:indow)?\s*=\s*(\d+)\s*$", re.IGNORECASE)


class BudgetExhausted(WhoopError):
    """No request may be sent for this app within the time allowed (code ``rate_limited``).

    ``reserved`` is true when WHOOP's budget is not used up but what is left is kept for
    more urgent work (this caller has a reserve).
    """

    def __init__(self, retry_after: float, reserved: bool = False) -> None:
        what = "kept for webhook-driven work" if reserved else "used up"
        super().__init__(
            "rate_limited",
            f"The WHOOP app's rate-limit budget is {what}; try again in {retry_after:.1f} s.",
            None,
            retry_after=retry_after,
        )
        self.reserved = reserved


def parse_rate_headers(headers: Mapping[str, str]) -> dict[str, Any] | None:
    """Parse WHOOP's ``X-RateLimit-*`` headers; None when they are absent or unreadable.

    Returns ``{"limit", "remaining", "reset", "policies"}`` where ``policies`` maps a
    window length in seconds to its quota (``{60: 100, 86400: 10000}``).
    """
    raw_limit = _header(headers, "X-RateLimit-Limit")
    raw_remaining = _header(headers, "X-RateLimit-Remaining")
    raw_reset = _header(headers, "X-RateLimit-Reset")
    if raw_limit is None or raw_remaining is None:
        return None
    parts = [p.strip() for p in raw_limit.split(",") if p.strip()]
    if not parts:
        return None
    policies: dict[int, int] = {}
    limit: int | None = None
    for part in parts:
        match = _POLICY.match(part)
        if match:
            policies[int(match.group(2))] = int(match.group(1))
        elif part.isdigit() and limit is None:
            limit = int(part)
    try:
        remaining = int(raw_remaining.strip())
        reset = float(raw_reset.strip()) if raw_reset is not None else None
    except ValueError:
        return None
    if remaining < 0 or (reset is not None and reset < 0):
        return None
    if limit is None and len(policies) == 1:
        limit = next(iter(policies.values()))
    return {"limit": limit, "remaining": remaining, "reset": reset, "policies": policies}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive look-up that works on plain dicts too."""
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return value


class RateBudget:
    """The shared request budget of one WHOOP app (see the module docstring for the design).

    ``minute_seconds`` / ``day_seconds`` are the window lengths; they exist so tests can
    use short windows and should stay 60 / 86400 in production. ``reserve`` (0 to 1) is
    the share of each window this caller leaves to callers without a reserve.
    """

    def __init__(
        self,
        redis_client: Any,
        app_key: str,
        per_minute: int = 100,
        per_day: int = 10_000,
        *,
        minute_seconds: float = 60,
        day_seconds: float = 86_400,
        reserve: float = 0.0,
    ) -> None:
        if not app_key or any(c.isspace() for c in app_key):
            raise ValueError("app_key must be a non-empty string without spaces")
        if per_minute < 0 or per_day < 0:
            raise ValueError("limits must not be negative")
        if not 0.0 <= reserve < 1.0:
            raise ValueError("reserve must be at least 0 and below 1")
        self.reserve = float(reserve)
        self.redis = redis_client
        self.app_key = app_key
        self.per_minute = int(per_minute)
        self.per_day = int(per_day)
        self.minute_ms = max(1, int(minute_seconds * 1000))
        self.day_ms = max(self.minute_ms, int(day_seconds * 1000))
        self.key = f"{KEY_PREFIX}:{app_key}:state"
        # Two day windows: long enough to remember today's count, short enough to vanish.
        self.ttl_ms = 2 * self.day_ms
        self._acquire = redis_client.register_script(_ACQUIRE)
        self._observe = redis_client.register_script(_OBSERVE)
        self._pause = redis_client.register_script(_PAUSE)

    def try_acquire(self) -> float:
        """Count one request if the budget allows it: 0.0, else the seconds to wait."""
        return self._try()[0]

    def _try(self) -> tuple[float, bool]:
        """(0.0, False) when a request was counted, else (seconds to wait, reserve-only)."""
        granted, wait_ms, reserved = self._acquire(
            keys=[self.key],
            args=[
                self.minute_ms,
                self.day_ms,
                self.per_minute,
                self.per_day,
                self.ttl_ms,
                repr(self.reserve),
            ],
        )
        if int(granted) == 1:
            return 0.0, False
        return max(0.001, int(wait_ms) / 1000), int(reserved) == 1

    def acquire(self, timeout: float | None = 60.0) -> float:
        """Wait until one request may be sent and count it; return the seconds waited.

        Raises ``BudgetExhausted`` as soon as it is clear the budget will not come back
        within ``timeout`` seconds (None waits as long as it takes).
        """
        started = time.monotonic()
        while True:
            wait, reserved = self._try()
            if wait == 0.0:
                return time.monotonic() - started
            elapsed = time.monotonic() - started
            if timeout is not None and elapsed + wait > timeout:
                raise BudgetExhausted(wait, reserved)
            # A little jitter so waiting workers do not all wake in the same millisecond.
            time.sleep(wait + random.uniform(0, min(0.05, wait / 4)))

    def observe(self, headers: Mapping[str, str]) -> None:
        """Correct the local view from a WHOOP response's ``X-RateLimit-*`` headers."""
        parsed = parse_rate_headers(headers)
        if parsed is None:
            return
        policies = parsed["policies"]
        windows = sorted(policies)
        # The shortest window WHOOP names is our "minute", the longest our "day".
        m_cap = policies[windows[0]] if windows else None
        d_cap = policies[windows[-1]] if len(windows) > 1 else None
        reset = parsed["reset"]
        which = self._described_window(parsed["limit"], m_cap, d_cap, reset)
        limit = parsed["limit"]
        used = max(0, limit - parsed["remaining"]) if limit is not None else 0
        if limit is None:
            which = ""
        reset_ms = int((reset if reset is not None else 60) * 1000)
        self._observe(
            keys=[self.key],
            args=[
                self.minute_ms,
                self.day_ms,
                self.ttl_ms,
                "" if m_cap is None else m_cap,
                "" if d_cap is None else d_cap,
                which,
                used,
                parsed["remaining"],
                reset_ms,
                OBSERVE_TOLERANCE_MS,
            ],
        )

    @staticmethod
    def _described_window(
        limit: int | None, m_cap: int | None, d_cap: int | None, reset: float | None
    ) -> str:
        """Which window ('m' or 'd') the Remaining/Reset headers describe."""
        short_reset = reset is None or reset <= 60
        if limit is not None and m_cap is not None and d_cap is not None and m_cap != d_cap:
            if limit == m_cap:
                return "m"
            if limit == d_cap:
                return "d"
        return "m" if short_reset else "d"

    def pause_until(self, ts: float) -> None:
        """Defer this app's work in every worker until the epoch time ``ts`` (seconds)."""
        self._pause(keys=[self.key], args=[int(ts * 1000), 0, self.ttl_ms])

    def pause_for(self, seconds: float) -> float:
        """Like ``pause_until`` but relative to the Redis clock; returns the end (epoch s)."""
        until = self._pause(keys=[self.key], args=["", int(seconds * 1000), self.ttl_ms])
        return int(until) / 1000

    def usage(self) -> dict[str, Any]:
        """The budget as the UI shows it: used and limit per minute and per day, the pause."""
        seconds, micros = self.redis.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        raw = self.redis.hgetall(self.key)
        fields = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }

        def number(name: str) -> int | None:
            value = fields.get(name)
            return int(float(value)) if value not in (None, "") else None

        def window(prefix: str, length: int) -> tuple[int, int]:
            # The same roll-forward as the scripts: a window that ended counts nothing.
            end, used = number(f"{prefix}_end"), number(f"{prefix}_used") or 0
            if end is None:
                return (now_ms // length + 1) * length, 0
            if now_ms >= end:
                return end + ((now_ms - end) // length + 1) * length, 0
            return end, used

        m_end, m_used = window("m", self.minute_ms)
        d_end, d_used = window("d", self.day_ms)
        m_cap, d_cap = number("m_cap"), number("d_cap")
        paused = number("paused_until") or 0
        # The minute before this one, as acquire() rolled it (or as it would).
        stored_end = number("m_end")
        if stored_end is not None and now_ms >= stored_end:
            m_prev = (number("m_used") or 0) if now_ms < stored_end + self.minute_ms else 0
        else:
            m_prev = number("m_prev") or 0
        return {
            "minute_used": m_used,
            "minute_prev_used": m_prev,
            "minute_limit": self.per_minute if m_cap is None else min(self.per_minute, m_cap),
            "minute_resets_in": (m_end - now_ms) / 1000,
            "minute_seconds": self.minute_ms / 1000,
            "day_used": d_used,
            "day_limit": self.per_day if d_cap is None else min(self.per_day, d_cap),
            "day_resets_in": (d_end - now_ms) / 1000,
            "day_seconds": self.day_ms / 1000,
            "paused_until": paused / 1000 if paused > now_ms else None,
        }

    def reset(self) -> None:
        """Forget this app's counts and pause (e.g. after WHOOP raised the limits)."""
        self.redis.delete(self.key)
