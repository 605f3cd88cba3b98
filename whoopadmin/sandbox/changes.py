"""Changes to a member's data through the control API, each followed by its webhooks.

Creates arrive as ``*.updated``; a main (non-nap) sleep carries a recovery, whose
webhooks use the sleep's UUID; deleting a sleep deletes its recovery.
"""

from __future__ import annotations

from typing import Any

from . import data as gen
from .state import SandboxError, SandboxState

STATES = {gen.SCORED, gen.PENDING, gen.UNSCORABLE}
SPORTS = {s[0]: s for s in gen.SPORTS}


def _time(payload: dict, name: str) -> int:
    value = payload.get(name)
    if not isinstance(value, str):
        raise SandboxError(400, "invalid_request", f"{name} must be an RFC 3339 date-time string")
    try:
        return gen.parse_datetime_ms(value)
    except ValueError as exc:
        raise SandboxError(400, "invalid_request", f"{name}: {exc}") from None


def _score_state(payload: dict, default: str = gen.SCORED) -> str:
    value = payload.get("score_state", default)
    if value not in STATES:
        raise SandboxError(400, "invalid_request", f"score_state must be one of {sorted(STATES)}")
    return value


def _span(state: SandboxState, payload: dict) -> tuple[int, int]:
    start, end = _time(payload, "start"), _time(payload, "end")
    if end <= start:
        raise SandboxError(400, "invalid_request", "end must be after start")
    if end > state.clock.now_ms():
        raise SandboxError(400, "invalid_request", "end must not be in the future")
    return start, end


def _check_keys(payload: Any, allowed: set[str]) -> dict:
    if not isinstance(payload, dict):
        raise SandboxError(400, "invalid_request", "the body must be a JSON object")
    unknown = set(payload) - allowed
    if unknown:
        raise SandboxError(400, "invalid_request", f"unknown fields: {sorted(unknown)}")
    return payload


def _stamp_now(state: SandboxState, record: dict) -> None:
    record["updated_at"] = gen.iso_ms(state.clock.now_ms())


def _rescore_sleep(md: gen.MemberData, sleep: dict, score_state: str) -> None:
    sleep["score_state"] = score_state
    sleep.pop("score", None)
    if score_state == gen.SCORED:
        duration = gen.parse_datetime_ms(sleep["end"]) - gen.parse_datetime_ms(sleep["start"])
        sleep["score"] = gen.sleep_score(md.rng, duration, sleep["nap"], 10)


def _follow_recovery(state: SandboxState, md: gen.MemberData, sleep: dict) -> None:
    """(Re)build the recovery of a main sleep so it mirrors the sleep."""
    md.remove_recovery(sleep["cycle_id"])
    recovery = gen.build_recovery(md, sleep, state.clock.now_ms())
    recovery["created_at"] = recovery["updated_at"] = sleep["updated_at"]
    md.add_recovery(recovery, sleep)


def create_sleep(state: SandboxState, user_id: int, payload: Any) -> dict:
    """Add a sleep (and, unless it is a nap, its recovery); webhooks follow."""
    payload = _check_keys(payload, {"start", "end", "nap", "score_state", "timezone_offset"})
    with state.lock:
        md = state.data(user_id)
        start, end = _span(state, payload)
        nap = payload.get("nap", False)
        if not isinstance(nap, bool):
            raise SandboxError(400, "invalid_request", "nap must be a boolean")
        score_state = _score_state(payload)
        cycle = md.cycle_at(start)
        if cycle is None:
            raise SandboxError(400, "invalid_request", "start is outside the member's cycles")
        if not nap and cycle["id"] in md.main_sleep_by_cycle:
            raise SandboxError(
                409, "conflict", "that cycle already has a main sleep; delete it or add a nap"
            )
        tz = _tz(payload, cycle["timezone_offset"])
        now = state.clock.now_ms()
        sleep = gen.build_sleep(md, cycle, start, end, nap, score_state, now, tz=tz)
        sleep["created_at"] = sleep["updated_at"] = gen.iso_ms(state.clock.now_ms())
        md.add_sleep(sleep)
        if not nap:
            _follow_recovery(state, md, sleep)
        state.emit(user_id, "sleep.updated", sleep["id"])
        if not nap:
            state.emit(user_id, "recovery.updated", sleep["id"])
        return sleep


def update_sleep(state: SandboxState, user_id: int, sleep_id: str, payload: Any) -> dict:
    """Rescore a sleep (its recovery follows); webhooks follow."""
    payload = _check_keys(payload, {"score_state"})
    with state.lock:
        md = state.data(user_id)
        sleep = md.sleep_by_id.get(sleep_id)
        if sleep is None:
            raise SandboxError(404, "not_found", "no such sleep")
        _rescore_sleep(md, sleep, _score_state(payload, sleep["score_state"]))
        _stamp_now(state, sleep)
        main = md.main_sleep_by_cycle.get(sleep["cycle_id"]) == sleep_id
        if main:
            _follow_recovery(state, md, sleep)
        state.emit(user_id, "sleep.updated", sleep_id)
        if main:
            state.emit(user_id, "recovery.updated", sleep_id)
        return sleep


def delete_sleep(state: SandboxState, user_id: int, sleep_id: str) -> None:
    """Delete a sleep and its recovery; webhooks follow."""
    with state.lock:
        md = state.data(user_id)
        if sleep_id not in md.sleep_by_id:
            raise SandboxError(404, "not_found", "no such sleep")
        recovery = md.remove_sleep(sleep_id)
        state.emit(user_id, "sleep.deleted", sleep_id)
        if recovery is not None:
            state.emit(user_id, "recovery.deleted", sleep_id)


def create_workout(state: SandboxState, user_id: int, payload: Any) -> dict:
    """Add a workout; a webhook follows."""
    payload = _check_keys(payload, {"start", "end", "sport_name", "score_state", "timezone_offset"})
    with state.lock:
        md = state.data(user_id)
        start, end = _span(state, payload)
        sport_name = payload.get("sport_name", "running")
        if sport_name not in SPORTS:
            raise SandboxError(
                400, "invalid_request", f"sport_name must be one of {sorted(SPORTS)}"
            )
        cycle = md.cycle_at(start)
        tz = cycle["timezone_offset"] if cycle else gen.tz_designator(md.profile.tz_minutes)
        tz = _tz(payload, tz)
        rec = gen.build_workout(
            md, start, end, tz, _score_state(payload), state.clock.now_ms(), SPORTS[sport_name]
        )
        rec["created_at"] = rec["updated_at"] = gen.iso_ms(state.clock.now_ms())
        md.add_workout(rec)
        state.emit(user_id, "workout.updated", rec["id"])
        return rec


def _tz(payload: dict, default: str) -> str:
    value = payload.get("timezone_offset", default)
    ok = isinstance(value, str) and (
        value == "Z"
        or (
            len(value) == 6
            and value[0] in "+-"
            and value[1:3].isdigit()
            and value[3] == ":"
            and value[4:].isdigit()
        )
    )
    if not ok:
        raise SandboxError(400, "invalid_request", "timezone_offset must be Z, +hh:mm or -hh:mm")
    return value


def update_workout(state: SandboxState, user_id: int, workout_id: str, payload: Any) -> dict:
    """Rescore a workout; a webhook follows."""
    payload = _check_keys(payload, {"score_state"})
    with state.lock:
        md = state.data(user_id)
        rec = md.workout_by_id.get(workout_id)
        if rec is None:
            raise SandboxError(404, "not_found", "no such workout")
        score_state = _score_state(payload, rec["score_state"])
        rec["score_state"] = score_state
        rec.pop("score", None)
        if score_state == gen.SCORED:
            duration = gen.parse_datetime_ms(rec["end"]) - gen.parse_datetime_ms(rec["start"])
            sport = SPORTS.get(rec["sport_name"], gen.SPORTS[0])
            rec["score"] = gen.workout_score(md.rng, md.profile, sport, duration)
        _stamp_now(state, rec)
        state.emit(user_id, "workout.updated", workout_id)
        return rec


def delete_workout(state: SandboxState, user_id: int, workout_id: str) -> None:
    """Delete a workout; a webhook follows."""
    with state.lock:
        md = state.data(user_id)
        if workout_id not in md.workout_by_id:
            raise SandboxError(404, "not_found", "no such workout")
        md.remove_workout(workout_id)
        state.emit(user_id, "workout.deleted", workout_id)


def start_cycle(state: SandboxState, user_id: int, start: str) -> dict:
    """End the member's current cycle at ``start`` and open the next one (no webhooks:
    WHOOP sends none for cycles). The ended cycle gets its final score; the new one has
    no ``end`` and a small score that grows as the day goes on."""
    with state.lock:
        md = state.data(user_id)
        start_ms = _time({"start": start}, "start")
        if start_ms > state.clock.now_ms():
            raise SandboxError(400, "invalid_request", "start must not be in the future")
        if not md.cycles.records or "end" in md.cycles.records[0]:
            raise SandboxError(409, "conflict", "the member has no current cycle")
        current = md.cycles.records[0]
        current_start = gen.parse_datetime_ms(current["start"])
        if start_ms <= current_start:
            raise SandboxError(400, "invalid_request", "start must be after the current cycle's")
        now = gen.iso_ms(state.clock.now_ms())
        md.cycles.remove(current_start, f"{current['id']:020d}")
        current["end"] = gen.iso_ms(start_ms)
        current["updated_at"] = now
        if current["score_state"] == gen.SCORED:
            current["score"] = gen.cycle_score(md.rng, md.profile)
        md.add_cycle(current, current_start, start_ms)
        cycle = {
            "id": current["id"] + 1,
            "user_id": user_id,
            "created_at": now,
            "updated_at": now,
            "start": gen.iso_ms(start_ms),
            "timezone_offset": current["timezone_offset"],
            "score_state": gen.SCORED,
            "score": gen.cycle_score(md.rng, md.profile, 0.05),
        }
        md.add_cycle(cycle, start_ms, None)
        return cycle
