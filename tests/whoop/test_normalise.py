"""Normalisation: indicators equal the sandbox's raw values, converted to the stated units.

The expected values are computed here field by field from the raw records (not from the
module's own tables), for every record of a member fetched over HTTP from the sandbox.
"""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from whoopadmin.sandbox import changes
from whoopadmin.whoop.normalise import (
    INDICATORS,
    Indicator,
    is_newer,
    normalise,
    record_key,
    record_ref,
)

MIN = 60_000  # ms in a minute
KCAL = 4.184  # kJ in a kcal

# The documented units, restated: a renamed or re-unitised indicator fails here.
UNITS = {
    "sleep_nap": "bool",
    "sleep_duration": "min",
    "sleep_in_bed_time": "min",
    "sleep_awake_time": "min",
    "sleep_no_data_time": "min",
    "sleep_light_time": "min",
    "sleep_deep_time": "min",
    "sleep_rem_time": "min",
    "sleep_asleep_time": "min",
    "sleep_cycle_count": "count",
    "sleep_disturbance_count": "count",
    "sleep_need_baseline": "min",
    "sleep_need_from_debt": "min",
    "sleep_need_from_strain": "min",
    "sleep_need_from_nap": "min",
    "sleep_efficiency": "%",
    "sleep_performance": "%",
    "sleep_consistency": "%",
    "respiratory_rate": "breaths/min",
    "recovery_score": "%",
    "hrv_rmssd": "ms",
    "resting_heart_rate": "bpm",
    "spo2": "%",
    "skin_temperature": "°C",
    "recovery_user_calibrating": "bool",
    "cycle_strain": "strain",
    "cycle_energy": "kJ",
    "cycle_calories": "kcal",
    "cycle_average_heart_rate": "bpm",
    "cycle_max_heart_rate": "bpm",
    "workout_sport": None,
    "workout_duration": "min",
    "workout_strain": "strain",
    "workout_average_heart_rate": "bpm",
    "workout_max_heart_rate": "bpm",
    "workout_energy": "kJ",
    "workout_calories": "kcal",
    "workout_percent_recorded": "%",
    **{f"workout_zone_{i}_time": "min" for i in range(6)},
    "workout_distance": "m",
    "workout_altitude_gain": "m",
    "workout_altitude_change": "m",
    "height": "m",
    "weight": "kg",
    "max_heart_rate": "bpm",
}


def _minutes_between(start: str, end: str) -> float:
    a = datetime.fromisoformat(start.replace("Z", "+00:00"))
    b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    return (b - a).total_seconds() / 60


def expected_sleep(rec: dict) -> dict:
    out = {"sleep_nap": rec["nap"], "sleep_duration": _minutes_between(rec["start"], rec["end"])}
    if rec["score_state"] != "SCORED":
        return out
    score = rec["score"]
    st, need = score["stage_summary"], score["sleep_needed"]
    out |= {
        "sleep_in_bed_time": st["total_in_bed_time_milli"] / MIN,
        "sleep_awake_time": st["total_awake_time_milli"] / MIN,
        "sleep_no_data_time": st["total_no_data_time_milli"] / MIN,
        "sleep_light_time": st["total_light_sleep_time_milli"] / MIN,
        "sleep_deep_time": st["total_slow_wave_sleep_time_milli"] / MIN,
        "sleep_rem_time": st["total_rem_sleep_time_milli"] / MIN,
        "sleep_asleep_time": (
            st["total_light_sleep_time_milli"]
            + st["total_slow_wave_sleep_time_milli"]
            + st["total_rem_sleep_time_milli"]
        )
        / MIN,
        "sleep_cycle_count": st["sleep_cycle_count"],
        "sleep_disturbance_count": st["disturbance_count"],
        "sleep_need_baseline": need["baseline_milli"] / MIN,
        "sleep_need_from_debt": need["need_from_sleep_debt_milli"] / MIN,
        "sleep_need_from_strain": need["need_from_recent_strain_milli"] / MIN,
        "sleep_need_from_nap": need["need_from_recent_nap_milli"] / MIN,
    }
    for name, field in (
        ("respiratory_rate", "respiratory_rate"),
        ("sleep_efficiency", "sleep_efficiency_percentage"),
        ("sleep_performance", "sleep_performance_percentage"),
        ("sleep_consistency", "sleep_consistency_percentage"),
    ):
        if field in score:
            out[name] = score[field]
    return out


def expected_recovery(rec: dict) -> dict:
    if rec["score_state"] != "SCORED":
        return {}
    score = rec["score"]
    out = {
        "recovery_score": score["recovery_score"],
        "hrv_rmssd": score["hrv_rmssd_milli"],
        "resting_heart_rate": score["resting_heart_rate"],
        "recovery_user_calibrating": score["user_calibrating"],
    }
    if "spo2_percentage" in score:
        out["spo2"] = score["spo2_percentage"]
    if "skin_temp_celsius" in score:
        out["skin_temperature"] = score["skin_temp_celsius"]
    return out


def expected_cycle(rec: dict) -> dict:
    if rec["score_state"] != "SCORED":
        return {}
    score = rec["score"]
    return {
        "cycle_strain": score["strain"],
        "cycle_energy": score["kilojoule"],
        "cycle_calories": score["kilojoule"] / KCAL,
        "cycle_average_heart_rate": score["average_heart_rate"],
        "cycle_max_heart_rate": score["max_heart_rate"],
    }


def expected_workout(rec: dict) -> dict:
    out = {
        "workout_sport": rec["sport_name"],
        "workout_duration": _minutes_between(rec["start"], rec["end"]),
    }
    if rec["score_state"] != "SCORED":
        return out
    score = rec["score"]
    zones = score["zone_durations"]
    out |= {
        "workout_strain": score["strain"],
        "workout_average_heart_rate": score["average_heart_rate"],
        "workout_max_heart_rate": score["max_heart_rate"],
        "workout_energy": score["kilojoule"],
        "workout_calories": score["kilojoule"] / KCAL,
        "workout_percent_recorded": score["percent_recorded"],
    }
    for i, zone in enumerate(("zero", "one", "two", "three", "four", "five")):
        out[f"workout_zone_{i}_time"] = zones[f"zone_{zone}_milli"] / MIN
    for name, field in (
        ("workout_distance", "distance_meter"),
        ("workout_altitude_gain", "altitude_gain_meter"),
        ("workout_altitude_change", "altitude_change_meter"),
    ):
        if field in score:
            out[name] = score[field]
    return out


EXPECTED = {
    "cycle": expected_cycle,
    "recovery": expected_recovery,
    "activity/sleep": expected_sleep,
    "activity/workout": expected_workout,
}


def _check(kind: str, record: dict, indicators: list[Indicator]) -> dict:
    values = {i.name: i.value for i in indicators}
    assert len(values) == len(indicators)  # no name twice
    assert values == EXPECTED[kind](record)
    type_, whoop_id = record_key(kind, record)
    for ind in indicators:
        assert ind.unit == UNITS[ind.name] == INDICATORS[ind.name]
        assert (ind.type, ind.whoop_id) == (type_, whoop_id)
        assert ind.start == record.get("start") and ind.end == record.get("end")
        assert ind.timezone_offset == record.get("timezone_offset")
        assert not isinstance(ind.value, float) or math.isfinite(ind.value)
    return values


@pytest.fixture
def fetched(world):
    """Every record of a WHOOP 4.0 and a WHOOP 3.0 member, fetched over HTTP."""

    def fetch(device: str) -> tuple[object, dict[str, list[dict]]]:
        member = world.member(days=120, device=device)
        client = world.client(world.tokens(member)["access_token"])
        return member, {kind: list(client.iter_collection(kind)) for kind in EXPECTED}

    return fetch


@pytest.mark.parametrize("device", ["4.0", "3.0"])
def test_every_record_normalises_to_its_raw_values(fetched, device):
    _member, data = fetched(device)
    states = {kind: set() for kind in EXPECTED}
    names: set[str] = set()
    for kind, records in data.items():
        for record in records:
            states[kind].add(record["score_state"])
            names |= set(_check(kind, record, normalise(kind, record)))
    for kind in EXPECTED:  # all three score states were exercised, for every type
        assert states[kind] == {"SCORED", "PENDING_SCORE", "UNSCORABLE"}, kind
    if device == "4.0":
        assert {"spo2", "skin_temperature", "workout_distance", "workout_altitude_gain"} <= names
    else:  # pre-4.0 hardware: no SpO2 or skin temperature anywhere
        assert not {"spo2", "skin_temperature"} & names
        assert "hrv_rmssd" in names


def test_unscored_records_have_no_score_indicators(fetched):
    _member, data = fetched("4.0")
    for kind, records in data.items():
        for record in records:
            if record["score_state"] == "SCORED":
                continue
            names = {i.name for i in normalise(kind, record)}
            assert names <= {"sleep_nap", "sleep_duration", "workout_sport", "workout_duration"}


def test_naps_and_the_current_cycle(fetched):
    _member, data = fetched("4.0")
    naps = [s for s in data["activity/sleep"] if s["nap"] and s["score_state"] == "SCORED"]
    assert naps
    for nap in naps:
        values = {i.name: i.value for i in normalise("sleep", nap)}
        assert values["sleep_nap"] is True
        assert "sleep_consistency" not in values  # WHOOP gives naps no consistency
        assert values["sleep_in_bed_time"] == nap["score"]["stage_summary"][
            "total_in_bed_time_milli"
        ] / (60 * 1000)
    current = data["cycle"][0]
    assert "end" not in current  # the cycle in progress
    indicators = normalise("cycle", current)
    assert indicators and all(i.end is None for i in indicators)
    assert {i.name for i in indicators} >= {"cycle_strain", "cycle_energy", "cycle_calories"}


def test_calibrating_recoveries_and_early_sleeps_lack_what_whoop_lacks(fetched):
    _member, data = fetched("4.0")
    scored = [r for r in data["recovery"] if r["score_state"] == "SCORED"]
    flags = [
        {i.name: i.value for i in normalise("recovery", r)}["recovery_user_calibrating"]
        for r in scored
    ]
    # A member's first recoveries are calibrating, later ones are not.
    assert flags[-1] is True and flags[0] is False and set(flags) == {True, False}
    oldest_sleep = [s for s in data["activity/sleep"] if not s["nap"]][-1]
    names = {i.name for i in normalise("activity/sleep", oldest_sleep)}
    assert "sleep_performance" not in names and "sleep_consistency" not in names


def test_body_measurement(world):
    member = world.member(days=1)
    client = world.client(world.tokens(member)["access_token"])
    indicators = normalise("body_measurement", client.body_measurement(), user_id=member.user_id)
    assert {i.name: (i.value, i.unit) for i in indicators} == {
        "height": (member.height_meter, "m"),
        "weight": (member.weight_kilogram, "kg"),
        "max_heart_rate": (member.max_heart_rate, "bpm"),
    }
    assert {(i.type, i.whoop_id) for i in indicators} == {("body_measurement", str(member.user_id))}


def test_odd_objects_never_crash():
    base = {
        "id": 7,
        "user_id": 1,
        "start": "2024-01-01T00:00:00.000Z",
        "timezone_offset": "Z",
    }
    # SCORED without a score, a score on a pending record, junk values, unknown state.
    assert normalise("cycle", base | {"score_state": "SCORED"}) == []
    assert normalise("cycle", base | {"score_state": "PENDING_SCORE", "score": {"strain": 3}}) == []
    junk = {"strain": "high", "kilojoule": float("nan"), "average_heart_rate": True}
    assert normalise("cycle", base | {"score_state": "SCORED", "score": junk}) == []
    partial = {"strain": 5.5, "max_heart_rate": 150}
    got = normalise("cycle", base | {"score_state": "SCORED", "score": partial})
    assert {i.name: i.value for i in got} == {"cycle_strain": 5.5, "cycle_max_heart_rate": 150}
    sleep = {"id": "a", "score_state": "SCORED", "score": {"stage_summary": None}}
    assert normalise("sleep", sleep) == []  # no nap flag, no times, a broken score
    v1_workout = {
        "id": "w",
        "sport_name": "running",
        "score_state": "SCORED",
        "score": {"zone_duration": {"zone_zero_milli": 60_000}},  # v1's spelling
    }
    values = {i.name: i.value for i in normalise("workout", v1_workout)}
    assert values == {"workout_sport": "running", "workout_zone_0_time": 1.0}
    for kind, record in (("cycle", {}), ("recovery", {"cycle_id": 1}), ("sleep", [])):
        with pytest.raises(ValueError):
            normalise(kind, record)
    with pytest.raises(ValueError):
        normalise("heart_rate", base)


def test_record_keys_match_what_webhooks_and_routes_carry(fetched):
    _member, data = fetched("4.0")
    cycle, recovery = data["cycle"][3], data["recovery"][3]
    sleep, workout = data["activity/sleep"][0], data["activity/workout"][0]
    assert record_key("cycle", cycle) == ("cycle", str(cycle["id"]))
    # recovery.* webhooks carry the sleep UUID: that is the recovery's key.
    assert record_key("recovery", recovery) == ("recovery", recovery["sleep_id"])
    assert record_key("activity/sleep", sleep) == record_key("sleep", sleep)
    assert record_key("sleep", sleep) == ("sleep", sleep["id"])
    assert record_key("workout", workout) == ("workout", workout["id"])
    keys = [record_key(kind, r) for kind, records in data.items() for r in records]
    assert len(keys) == len(set(keys))  # unique across the whole history


def test_edits_at_whoop_are_detected_by_updated_at(world):
    member = world.member(days=10)
    client = world.client(world.tokens(member)["access_token"])
    workout = next(iter(client.iter_collection("activity/workout")))
    before = record_ref("workout", workout)
    assert before.updated_at is not None and before.updated_at.tzinfo is not None
    assert not is_newer(record_ref("workout", client.workout(workout["id"])), before.updated_at)
    world.control("POST", "/clock", json={"advance_seconds": 600})
    changes.update_workout(world.sb.state, member.user_id, workout["id"], {})  # rescored
    after = record_ref("workout", client.workout(workout["id"]))
    assert after.key == before.key and is_newer(after, before.updated_at)
    assert is_newer(after, None)  # never stored: always take it
