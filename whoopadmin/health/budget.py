"""The rate-budget forecast: how much of WHOOP's budget is used, and how long it lasts.

Inputs are the shared budget's ``usage()`` (our count, corrected by WHOOP's
``X-RateLimit-*`` headers, and the day window's timing, anchored to WHOOP's reset) and
the members the app serves. The **current rate** is the day window's use so far divided
by the time it has been open (at least an hour); the forecast extrapolates it to the
window's end:

* ``projected`` — calls by the end of the day window at that rate;
* ``runs_out_in`` — seconds until the day's budget is used up at that rate, when that
  comes before the window resets (None: it lasts the day);
* ``per_member`` — projected calls per member per day, and ``members_supported`` —
  how many members the daily limit carries at that cost.

The minute window is judged on the larger of the current minute and the last complete
one (``minute_prev_used``), so a reader once a minute sees full minutes.
"""

from __future__ import annotations

import math
from typing import Any

# The rate of a day window open for less than this is taken over this long: a burst in
# its first minutes would otherwise project to many times the day's real use.
MIN_ELAPSED = 3600.0


def forecast(usage: dict[str, Any], members: int) -> dict[str, Any]:
    """The forecast for one budget (``RateBudget.usage()``) serving ``members`` members."""
    day_limit = max(0, int(usage["day_limit"]))
    used = max(0, int(usage["day_used"]))
    day_seconds = float(usage.get("day_seconds") or 86_400)
    resets_in = min(day_seconds, max(0.0, float(usage["day_resets_in"])))
    elapsed = max(MIN_ELAPSED, day_seconds - resets_in)
    rate = used / elapsed  # calls per second
    projected = used + rate * resets_in
    runs_out_in: float | None = None
    if used >= day_limit:
        runs_out_in = 0.0
    elif rate > 0:
        left = (day_limit - used) / rate
        if left < resets_in:
            runs_out_in = left
    per_member = projected / members if members > 0 else None
    supported = None
    if per_member:
        supported = math.floor(day_limit / per_member)
    minute_limit = max(0, int(usage["minute_limit"]))
    minute_peak = max(int(usage["minute_used"]), int(usage.get("minute_prev_used") or 0))
    return {
        "day_used": used,
        "day_limit": day_limit,
        "day_share": used / day_limit if day_limit else 1.0,
        "day_resets_in": resets_in,
        "day_elapsed": day_seconds - resets_in,
        "rate_per_hour": rate * 3600,
        "projected": round(projected),
        "projected_share": projected / day_limit if day_limit else 1.0,
        "runs_out_in": runs_out_in,
        "members": members,
        "per_member": per_member,
        "members_supported": supported,
        "minute_peak": minute_peak,
        "minute_limit": minute_limit,
        "minute_share": minute_peak / minute_limit if minute_limit else 1.0,
        "paused_until": usage.get("paused_until"),
    }


def state(fc: dict[str, Any], warn: float, previous: str | None = None) -> tuple[str, list[str]]:
    """(ok / warning / problem, the reasons) for a forecast.

    Problem: WHOOP paused the app (a 429) or the day's budget is used up. Warning: either
    window at ``warn`` of its limit, or the day's budget runs out before it resets. Once
    warned, a window must drop 10 points below ``warn`` to clear (no flapping).
    """
    reasons = []
    if fc["paused_until"]:
        reasons.append("paused")
    if fc["day_used"] >= fc["day_limit"]:
        reasons.append("day_exhausted")
    if reasons:
        return "problem", reasons
    level = warn - 0.1 if previous in ("warning", "problem") else warn
    if fc["minute_share"] >= level:
        reasons.append("minute")
    if fc["day_share"] >= level:
        reasons.append("day")
    if fc["runs_out_in"] is not None:
        reasons.append("runs_out")
    return ("warning" if reasons else "ok"), reasons
