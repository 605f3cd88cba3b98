"""Map WHOOP API v2 objects to named indicators with units. Plain Python, no Flask.

Objects are read as WHOOP's OpenAPI document defines them: optional fields may be
absent, and ``score`` exists only when ``score_state == "SCORED"``. Anything missing or
not a finite number yields no indicator rather than an error, so a pending or unscorable
record still normalises (to its few unscored facts). Durations are converted from
milliseconds to **minutes** (float, exact: ``milli / 60000``); energy is given in kJ as
WHOOP sends it and in kcal (``kJ / 4.184``).

Indicator names and units (``INDICATORS`` lists them all):

=========================  ===========  ===============================================
name                       unit         from
=========================  ===========  ===============================================
sleep_nap                  bool         sleep.nap (always)
sleep_duration             min          sleep.end - sleep.start (always)
sleep_in_bed_time          min          stage_summary.total_in_bed_time_milli
sleep_awake_time           min          stage_summary.total_awake_time_milli
sleep_no_data_time         min          stage_summary.total_no_data_time_milli
sleep_light_time           min          stage_summary.total_light_sleep_time_milli
sleep_deep_time            min          stage_summary.total_slow_wave_sleep_time_milli
sleep_rem_time             min          stage_summary.total_rem_sleep_time_milli
sleep_asleep_time          min          light + deep (slow-wave) + REM
sleep_cycle_count          count        stage_summary.sleep_cycle_count
sleep_disturbance_count    count        stage_summary.disturbance_count
sleep_need_baseline        min          sleep_needed.baseline_milli
sleep_need_from_debt       min          sleep_needed.need_from_sleep_debt_milli
sleep_need_from_strain     min          sleep_needed.need_from_recent_strain_milli
sleep_need_from_nap        min          sleep_needed.need_from_recent_nap_milli (<= 0)
sleep_efficiency           %            score.sleep_efficiency_percentage
sleep_performance          %            score.sleep_performance_percentage
sleep_consistency          %            score.sleep_consistency_percentage
respiratory_rate           breaths/min  score.respiratory_rate
recovery_score             %            score.recovery_score
hrv_rmssd                  ms           score.hrv_rmssd_milli
resting_heart_rate         bpm          score.resting_heart_rate
spo2                       %            score.spo2_percentage (WHOOP 4.0+)
skin_temperature           °C           score.skin_temp_celsius (WHOOP 4.0+)
recovery_user_calibrating  bool         score.user_calibrating
cycle_strain               strain       score.strain (WHOOP's 0–21 scale)
cycle_energy               kJ           score.kilojoule
cycle_calories             kcal         score.kilojoule / 4.184
cycle_average_heart_rate   bpm          score.average_heart_rate
cycle_max_heart_rate       bpm          score.max_heart_rate
workout_sport              (text)       workout.sport_name (always)
workout_duration           min          workout.end - workout.start (always)
workout_strain             strain       score.strain
workout_average_heart_rate bpm          score.average_heart_rate
workout_max_heart_rate     bpm          score.max_heart_rate
workout_energy             kJ           score.kilojoule
workout_calories           kcal         score.kilojoule / 4.184
workout_percent_recorded   %            score.percent_recorded
workout_zone_0_time …      min          score.zone_durations.zone_zero_milli …
workout_zone_5_time        min          … zone_five_milli
workout_distance           m            score.distance_meter
workout_altitude_gain      m            score.altitude_gain_meter
workout_altitude_change    m            score.altitude_change_meter
height                     m            body.height_meter
weight                     kg           body.weight_kilogram
max_heart_rate             bpm          body.max_heart_rate
=========================  ===========  ===============================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

KJ_PER_KCAL = 4.184
MS_PER_MINUTE = 60_000

# Accepted spellings of a record type → the canonical one used in keys and indicators.
KINDS = {
    "cycle": "cycle",
    "recovery": "recovery",
    "sleep": "sleep",
    "activity/sleep": "sleep",
    "workout": "workout",
    "activity/workout": "workout",
    "body_measurement": "body_measurement",
    "body": "body_measurement",
}

_SLEEP_STAGES = (
    ("sleep_in_bed_time", "total_in_bed_time_milli"),
    ("sleep_awake_time", "total_awake_time_milli"),
    ("sleep_no_data_time", "total_no_data_time_milli"),
    ("sleep_light_time", "total_light_sleep_time_milli"),
    ("sleep_deep_time", "total_slow_wave_sleep_time_milli"),
    ("sleep_rem_time", "total_rem_sleep_time_milli"),
)
_SLEEP_COUNTS = (
    ("sleep_cycle_count", "sleep_cycle_count"),
    ("sleep_disturbance_count", "disturbance_count"),
)
_SLEEP_NEED = (
    ("sleep_need_baseline", "baseline_milli"),
    ("sleep_need_from_debt", "need_from_sleep_debt_milli"),
    ("sleep_need_from_strain", "need_from_recent_strain_milli"),
    ("sleep_need_from_nap", "need_from_recent_nap_milli"),
)
_SLEEP_SCORE = (
    ("sleep_efficiency", "sleep_efficiency_percentage", "%"),
    ("sleep_performance", "sleep_performance_percentage", "%"),
    ("sleep_consistency", "sleep_consistency_percentage", "%"),
    ("respiratory_rate", "respiratory_rate", "breaths/min"),
)
_RECOVERY_SCORE = (
    ("recovery_score", "recovery_score", "%"),
    ("hrv_rmssd", "hrv_rmssd_milli", "ms"),
    ("resting_heart_rate", "resting_heart_rate", "bpm"),
    ("spo2", "spo2_percentage", "%"),
    ("skin_temperature", "skin_temp_celsius", "°C"),
)
_ZONES = ("zero", "one", "two", "three", "four", "five")
_WORKOUT_SCORE = (
    ("workout_strain", "strain", "strain"),
    ("workout_average_heart_rate", "average_heart_rate", "bpm"),
    ("workout_max_heart_rate", "max_heart_rate", "bpm"),
    ("workout_percent_recorded", "percent_recorded", "%"),
    ("workout_distance", "distance_meter", "m"),
    ("workout_altitude_gain", "altitude_gain_meter", "m"),
    ("workout_altitude_change", "altitude_change_meter", "m"),
)
_CYCLE_SCORE = (
    ("cycle_strain", "strain", "strain"),
    ("cycle_average_heart_rate", "average_heart_rate", "bpm"),
    ("cycle_max_heart_rate", "max_heart_rate", "bpm"),
)
_BODY = (
    ("height", "height_meter", "m"),
    ("weight", "weight_kilogram", "kg"),
    ("max_heart_rate", "max_heart_rate", "bpm"),
)

INDICATORS: dict[str, str | None] = {
    "sleep_nap": "bool",
    "sleep_duration": "min",
    **{name: "min" for name, _ in _SLEEP_STAGES},
    "sleep_asleep_time": "min",
    **{name: "count" for name, _ in _SLEEP_COUNTS},
    **{name: "min" for name, _ in _SLEEP_NEED},
    **{name: unit for name, _, unit in _SLEEP_SCORE},
    **{name: unit for name, _, unit in _RECOVERY_SCORE},
    "recovery_user_calibrating": "bool",
    **{name: unit for name, _, unit in _CYCLE_SCORE},
    "cycle_energy": "kJ",
    "cycle_calories": "kcal",
    "workout_sport": None,
    "workout_duration": "min",
    **{name: unit for name, _, unit in _WORKOUT_SCORE},
    "workout_energy": "kJ",
    "workout_calories": "kcal",
    **{f"workout_zone_{i}_time": "min" for i in range(len(_ZONES))},
    **{name: unit for name, _, unit in _BODY},
}
"""Every indicator name this module can produce, with its unit (None for text)."""


@dataclass(frozen=True)
class Indicator:
    """One named value of one WHOOP record, in the unit named beside it."""

    type: str  # record type: cycle, recovery, sleep, workout, body_measurement
    whoop_id: str  # the record's WHOOP id as text (see record_key)
    name: str
    value: float | int | bool | str
    unit: str | None
    start: str | None = None  # ISO 8601 UTC, as WHOOP sent it
    end: str | None = None  # None for the current cycle (and records without one)
    timezone_offset: str | None = None  # "+hh:mm", "-hh:mm" or "Z"


@dataclass(frozen=True)
class RecordRef:
    """A record's stable identity and its version (``updated_at``) for edit detection."""

    type: str
    whoop_id: str
    updated_at: datetime | None

    @property
    def key(self) -> tuple[str, str]:
        """(type, whoop id): what indicators are upserted by, with the link."""
        return (self.type, self.whoop_id)


def canonical_kind(kind: str) -> str:
    """The canonical record type for ``kind`` (``activity/sleep`` → ``sleep``)."""
    found = KINDS.get(kind)
    if found is None:
        raise ValueError(f"unknown WHOOP record type {kind!r}")
    return found


def record_key(kind: str, record: dict, user_id: int | None = None) -> tuple[str, str]:
    """The stable key ``(type, whoop_id)`` of a record.

    Cycles use their int64 id (as text), sleeps and workouts their UUID. A recovery has
    no id of its own: it is keyed by its **sleep UUID**, which is what ``recovery.*``
    webhooks carry (its cycle has exactly one main sleep). A body measurement has no id
    either: it is keyed by ``user_id`` when given, else ``"me"``.
    """
    kind = canonical_kind(kind)
    if not isinstance(record, dict):
        raise ValueError("a WHOOP record must be a JSON object")
    if kind == "body_measurement":
        return (kind, str(user_id) if user_id is not None else "me")
    field = "sleep_id" if kind == "recovery" else "id"
    value = record.get(field)
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise ValueError(f"the {kind} record has no usable {field}")
    return (kind, str(value))


def parse_timestamp(value: Any) -> datetime | None:
    """Parse a WHOOP timestamp (ISO 8601 with an offset or Z); None if absent or invalid."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def record_ref(kind: str, record: dict, user_id: int | None = None) -> RecordRef:
    """The record's key and ``updated_at`` (None if absent): compare versions with it."""
    type_, whoop_id = record_key(kind, record, user_id)
    return RecordRef(type_, whoop_id, parse_timestamp(record.get("updated_at")))


def is_newer(candidate: RecordRef, stored_updated_at: datetime | None) -> bool:
    """Return whether ``candidate`` was edited at WHOOP after the stored version.

    Without a stored version (or without an ``updated_at`` on either side) the candidate
    counts as newer, so nothing is ever skipped by mistake.
    """
    if stored_updated_at is None or candidate.updated_at is None:
        return True
    return candidate.updated_at > stored_updated_at


def normalise(kind: str, record: dict, user_id: int | None = None) -> list[Indicator]:
    """All indicators of one WHOOP record (``kind`` as in ``KINDS``)."""
    kind = canonical_kind(kind)
    type_, whoop_id = record_key(kind, record, user_id)
    out = _Builder(type_, whoop_id, record)
    score = record.get("score") if record.get("score_state") == "SCORED" else None
    if not isinstance(score, dict):
        score = None
    if kind == "sleep":
        _sleep(out, record, score)
    elif kind == "recovery":
        _recovery(out, score)
    elif kind == "cycle":
        _cycle(out, score)
    elif kind == "workout":
        _workout(out, record, score)
    else:
        for name, field, unit in _BODY:
            out.add(name, _number(record.get(field)), unit)
    return out.items


class _Builder:
    """Collects indicators that share a record's identity and time span."""

    def __init__(self, type_: str, whoop_id: str, record: dict) -> None:
        self.base = {
            "type": type_,
            "whoop_id": whoop_id,
            "start": _text(record.get("start")),
            "end": _text(record.get("end")),
            "timezone_offset": _text(record.get("timezone_offset")),
        }
        self.items: list[Indicator] = []

    def add(self, name: str, value: Any, unit: str | None) -> None:
        # Absent or non-numeric source fields produce nothing (see the module docstring).
        if value is None:
            return
        self.items.append(Indicator(name=name, value=value, unit=unit, **self.base))


def _number(value: Any) -> int | float | None:
    """A finite JSON number, else None (bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _minutes(value: Any) -> float | None:
    number = _number(value)
    return None if number is None else number / MS_PER_MINUTE


def _kcal(value: Any) -> float | None:
    number = _number(value)
    return None if number is None else number / KJ_PER_KCAL


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _duration_minutes(record: dict) -> float | None:
    start, end = parse_timestamp(record.get("start")), parse_timestamp(record.get("end"))
    if start is None or end is None:
        return None
    return (end - start).total_seconds() / 60


def _sub(score: dict | None, name: str) -> dict:
    value = score.get(name) if score else None
    return value if isinstance(value, dict) else {}


def _sleep(out: _Builder, record: dict, score: dict | None) -> None:
    nap = record.get("nap")
    out.add("sleep_nap", nap if isinstance(nap, bool) else None, "bool")
    out.add("sleep_duration", _duration_minutes(record), "min")
    if score is None:
        return
    stages = _sub(score, "stage_summary")
    for name, field in _SLEEP_STAGES:
        out.add(name, _minutes(stages.get(field)), "min")
    parts = [
        _number(stages.get(f))
        for f in (
            "total_light_sleep_time_milli",
            "total_slow_wave_sleep_time_milli",
            "total_rem_sleep_time_milli",
        )
    ]
    if all(p is not None for p in parts):
        out.add("sleep_asleep_time", sum(parts) / MS_PER_MINUTE, "min")  # type: ignore[arg-type]
    for name, field in _SLEEP_COUNTS:
        out.add(name, _number(stages.get(field)), "count")
    need = _sub(score, "sleep_needed")
    for name, field in _SLEEP_NEED:
        out.add(name, _minutes(need.get(field)), "min")
    for name, field, unit in _SLEEP_SCORE:
        out.add(name, _number(score.get(field)), unit)


def _recovery(out: _Builder, score: dict | None) -> None:
    if score is None:
        return
    for name, field, unit in _RECOVERY_SCORE:
        out.add(name, _number(score.get(field)), unit)
    calibrating = score.get("user_calibrating")
    out.add(
        "recovery_user_calibrating", calibrating if isinstance(calibrating, bool) else None, "bool"
    )


def _cycle(out: _Builder, score: dict | None) -> None:
    if score is None:
        return
    for name, field, unit in _CYCLE_SCORE:
        out.add(name, _number(score.get(field)), unit)
    out.add("cycle_energy", _number(score.get("kilojoule")), "kJ")
    out.add("cycle_calories", _kcal(score.get("kilojoule")), "kcal")


def _workout(out: _Builder, record: dict, score: dict | None) -> None:
    out.add("workout_sport", _text(record.get("sport_name")), None)
    out.add("workout_duration", _duration_minutes(record), "min")
    if score is None:
        return
    for name, field, unit in _WORKOUT_SCORE:
        out.add(name, _number(score.get(field)), unit)
    out.add("workout_energy", _number(score.get("kilojoule")), "kJ")
    out.add("workout_calories", _kcal(score.get("kilojoule")), "kcal")
    # v1 called it zone_duration; accept either spelling.
    zones = _sub(score, "zone_durations") or _sub(score, "zone_duration")
    for i, zone in enumerate(_ZONES):
        out.add(f"workout_zone_{i}_time", _minutes(zones.get(f"zone_{zone}_milli")), "min")
