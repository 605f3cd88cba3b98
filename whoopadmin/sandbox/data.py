"""Deterministic synthetic WHOOP data: one member's cycles, sleeps, recoveries and workouts.

Everything here is plain Python (no Flask). A member's history is generated from
``(seed, user_id)`` and an anchor time, so the same seed always gives the same data.
The generator covers WHOOP's real edge cases: all three ``score_state`` values, naps,
missing optional fields (SpO2/skin temperature before WHOOP 4.0, sleep performance and
consistency early in a member's history, workout distance/altitude), a current cycle
without ``end``, int64 cycle ids, UUID sleep/workout ids and changing timezone offsets.
"""

from __future__ import annotations

import bisect
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

SCORED = "SCORED"
PENDING = "PENDING_SCORE"
UNSCORABLE = "UNSCORABLE"

# (sport_name, sport_id, has_distance, has_altitude)
SPORTS = [
    ("running", 0, True, True),
    ("cycling", 1, True, True),
    ("swimming", 33, True, False),
    ("tennis", 34, False, False),
    ("yoga", 44, False, False),
    ("weightlifting", 45, False, False),
    ("functional-fitness", 48, False, False),
    ("hiking-rucking", 52, True, True),
    ("walking", 63, True, False),
    ("hiit", 96, False, False),
]

FIRST_NAMES = ["Ada", "Grace", "Alan", "Katherine", "Linus", "Margaret", "Dennis", "Barbara"]
LAST_NAMES = ["Lovelace", "Hopper", "Turing", "Johnson", "Torvalds", "Hamilton", "Ritchie"]
TZ_CHOICES = [-300, -480, 0, 60, 330, 540, -180, 120]  # minutes east of UTC


def iso_ms(ms: int) -> str:
    """Format epoch milliseconds the way WHOOP does: ``2022-04-24T11:25:44.774Z``."""
    secs, milli = divmod(ms, 1000)
    t = time.gmtime(secs)
    return f"{t[0]:04d}-{t[1]:02d}-{t[2]:02d}T{t[3]:02d}:{t[4]:02d}:{t[5]:02d}.{milli:03d}Z"


def parse_datetime_ms(value: str) -> int:
    """Parse an RFC 3339 date-time (offset required) into epoch milliseconds."""
    text = value.strip()
    if not text or "T" not in text.upper():
        raise ValueError("not an RFC 3339 date-time")
    dt = datetime.fromisoformat(text.replace("z", "Z"))
    if dt.tzinfo is None:
        raise ValueError("date-time needs a time zone offset (e.g. Z)")
    return int(dt.timestamp() * 1000)


def tz_designator(minutes: int) -> str:
    """Render an offset in minutes as a W3C Time Zone Designator (``Z``, ``+hh:mm``, ``-hh:mm``)."""
    if minutes == 0:
        return "Z"
    sign = "+" if minutes > 0 else "-"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def make_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng`` (deterministic)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass
class MemberProfile:
    """A fake WHOOP member: identity, device generation and habits."""

    user_id: int
    email: str
    first_name: str
    last_name: str
    password: str
    device: str = "4.0"  # "4.0" has SpO2 and skin temperature; "3.0" does not
    days: int = 90
    tz_minutes: int = -300
    travel_tz_minutes: int | None = None  # offset used for a stretch of the history
    height_meter: float = 1.75
    weight_kilogram: float = 72.5
    max_heart_rate: int = 192
    anchor_ms: int = 0  # "now" when the history was generated

    def public(self) -> dict:
        """The profile as the control API shows it (includes the fake password)."""
        return {
            "user_id": self.user_id,
            "email": self.email,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "password": self.password,
            "device": self.device,
            "days": self.days,
            "timezone_offset": tz_designator(self.tz_minutes),
        }


def make_profile(seed: int, n: int, anchor_ms: int, **overrides) -> MemberProfile:
    """Build the n-th member of a sandbox seeded with ``seed`` (overrides win)."""
    rng = random.Random(f"profile:{seed}:{n}")
    first = FIRST_NAMES[(n - 1) % len(FIRST_NAMES)]
    last = LAST_NAMES[rng.randrange(len(LAST_NAMES))]
    user_id = overrides.pop("user_id", None) or 10_000 + 1_000 * (seed % 1_000) + n
    tz = TZ_CHOICES[(n - 1) % len(TZ_CHOICES)]
    profile = MemberProfile(
        user_id=user_id,
        email=f"{first.lower()}.{last.lower()}{n}@example.com",
        first_name=first,
        last_name=last,
        password=f"pw-{rng.getrandbits(32):08x}",
        # Every third member wears a WHOOP 3.0 (no SpO2 / skin temperature).
        device="3.0" if n % 3 == 2 else "4.0",
        tz_minutes=tz,
        travel_tz_minutes=(tz + 360 if tz <= 0 else tz - 480) if n % 2 == 1 else None,
        height_meter=round(rng.uniform(1.55, 1.95), 4),
        weight_kilogram=round(rng.uniform(52, 105), 4),
        max_heart_rate=rng.randint(176, 204),
        anchor_ms=anchor_ms,
    )
    for key, value in overrides.items():
        if value is not None:
            setattr(profile, key, value)
    return profile


class Collection:
    """Records kept newest first (by start, then id), with keyset paging."""

    def __init__(self) -> None:
        self.keys: list[tuple[int, str]] = []  # (-start_ms, id) ascending = newest first
        self.ends: list[float] = []  # end ms, inf while ongoing
        self.records: list[dict] = []
        self.max_span = 0

    def __len__(self) -> int:
        return len(self.records)

    def add(self, start_ms: int, end_ms: int | None, record_id: str, record: dict) -> None:
        """Insert a record in order."""
        key = (-start_ms, record_id)
        i = bisect.bisect_left(self.keys, key)
        self.keys.insert(i, key)
        self.ends.insert(i, float("inf") if end_ms is None else end_ms)
        self.records.insert(i, record)
        if end_ms is not None:
            self.max_span = max(self.max_span, end_ms - start_ms)

    def remove(self, start_ms: int, record_id: str) -> None:
        """Remove the record with this start and id."""
        i = bisect.bisect_left(self.keys, (-start_ms, record_id))
        if i < len(self.keys) and self.keys[i] == (-start_ms, record_id):
            del self.keys[i], self.ends[i], self.records[i]

    def page(
        self,
        start_ms: int | None,
        end_ms: int,
        after: tuple[int, str] | None,
        limit: int,
        overlap: bool,
    ) -> tuple[list[dict], tuple[int, str] | None]:
        """One page of records newest first; returns (records, key of the last one if more)."""
        # Records that start before `end` (exclusive): -start > -end.
        i = bisect.bisect_right(self.keys, (-end_ms, "\uffff"))
        if after is not None:
            i = max(i, bisect.bisect_right(self.keys, after))
        out: list[dict] = []
        last_key = None
        keys, ends, records = self.keys, self.ends, self.records
        n = len(keys)
        while i < n:
            rec_start = -keys[i][0]
            if start_ms is not None:
                if overlap:
                    # Touching `start` is not overlapping. Once even the longest finished
                    # record cannot reach `start`, no older one can (only the newest cycle
                    # is ongoing, and it comes first).
                    if ends[i] <= start_ms:
                        if rec_start + self.max_span < start_ms:
                            break
                        i += 1
                        continue
                elif rec_start < start_ms:
                    break
            if len(out) == limit:
                return out, last_key
            out.append(records[i])
            last_key = keys[i]
            i += 1
        return out, None


@dataclass
class MemberData:
    """All of one member's records with the indexes the API needs."""

    profile: MemberProfile
    rng: random.Random
    cycles: Collection = field(default_factory=Collection)
    sleeps: Collection = field(default_factory=Collection)
    workouts: Collection = field(default_factory=Collection)
    recoveries: Collection = field(default_factory=Collection)
    cycle_by_id: dict[int, dict] = field(default_factory=dict)
    sleep_by_id: dict[str, dict] = field(default_factory=dict)
    workout_by_id: dict[str, dict] = field(default_factory=dict)
    recovery_by_cycle: dict[int, dict] = field(default_factory=dict)
    main_sleep_by_cycle: dict[int, str] = field(default_factory=dict)
    v1_ids: dict[int, str] = field(default_factory=dict)
    next_v1: int = 0

    # -- indexes ---------------------------------------------------------------

    def add_cycle(self, rec: dict, start: int | None = None, end: int | None = None) -> None:
        """Index a cycle record (``start``/``end`` in ms save parsing them again)."""
        if start is None:
            start = parse_datetime_ms(rec["start"])
            end = parse_datetime_ms(rec["end"]) if "end" in rec else None
        self.cycles.add(start, end, f"{rec['id']:020d}", rec)
        self.cycle_by_id[rec["id"]] = rec

    def add_sleep(self, rec: dict, start: int | None = None, end: int | None = None) -> None:
        """Index a sleep record."""
        if start is None or end is None:
            start, end = parse_datetime_ms(rec["start"]), parse_datetime_ms(rec["end"])
        self.sleeps.add(start, end, rec["id"], rec)
        self.sleep_by_id[rec["id"]] = rec
        if not rec["nap"]:
            self.main_sleep_by_cycle[rec["cycle_id"]] = rec["id"]
        if "v1_id" in rec:
            self.v1_ids[rec["v1_id"]] = rec["id"]

    def remove_sleep(self, sleep_id: str) -> dict | None:
        """Drop a sleep and its recovery; returns the recovery that went with it."""
        rec = self.sleep_by_id.pop(sleep_id)
        self.sleeps.remove(parse_datetime_ms(rec["start"]), sleep_id)
        self.v1_ids.pop(rec.get("v1_id", -1), None)
        recovery = None
        if self.main_sleep_by_cycle.get(rec["cycle_id"]) == sleep_id:
            del self.main_sleep_by_cycle[rec["cycle_id"]]
            recovery = self.recovery_by_cycle.pop(rec["cycle_id"], None)
            if recovery is not None:
                self.recoveries.remove(parse_datetime_ms(rec["start"]), sleep_id)
        return recovery

    def add_recovery(
        self, rec: dict, sleep: dict, start: int | None = None, end: int | None = None
    ) -> None:
        """Index a recovery, ordered by the start of its sleep."""
        if start is None or end is None:
            start, end = parse_datetime_ms(sleep["start"]), parse_datetime_ms(sleep["end"])
        self.recoveries.add(start, end, sleep["id"], rec)
        self.recovery_by_cycle[rec["cycle_id"]] = rec

    def remove_recovery(self, cycle_id: int) -> dict | None:
        """Drop the recovery of a cycle (before re-adding a rescored one)."""
        rec = self.recovery_by_cycle.pop(cycle_id, None)
        if rec is not None:
            sleep = self.sleep_by_id[rec["sleep_id"]]
            self.recoveries.remove(parse_datetime_ms(sleep["start"]), rec["sleep_id"])
        return rec

    def add_workout(self, rec: dict, start: int | None = None, end: int | None = None) -> None:
        """Index a workout record."""
        if start is None or end is None:
            start, end = parse_datetime_ms(rec["start"]), parse_datetime_ms(rec["end"])
        self.workouts.add(start, end, rec["id"], rec)
        self.workout_by_id[rec["id"]] = rec
        if "v1_id" in rec:
            self.v1_ids[rec["v1_id"]] = rec["id"]

    def remove_workout(self, workout_id: str) -> dict:
        """Drop a workout."""
        rec = self.workout_by_id.pop(workout_id)
        self.workouts.remove(parse_datetime_ms(rec["start"]), workout_id)
        self.v1_ids.pop(rec.get("v1_id", -1), None)
        return rec

    def cycle_at(self, ms: int) -> dict | None:
        """The cycle that contains the instant ``ms`` (or None)."""
        i = bisect.bisect_left(self.cycles.keys, (-ms, ""))
        if i < len(self.cycles.keys):
            rec = self.cycles.records[i]
            if self.cycles.ends[i] > ms:
                return rec
        return None

    def new_v1_id(self) -> int:
        """A fresh legacy (v1) activity id, unique across members."""
        self.next_v1 += 1
        return self.profile.user_id * 100_000 + self.next_v1

    # -- saving ----------------------------------------------------------------

    def to_snapshot(self) -> dict:
        """Every record and the generator's state, as JSON-ready data."""
        version, internal, gauss = self.rng.getstate()
        return {
            "rng": [version, list(internal), gauss],
            "next_v1": self.next_v1,
            "cycles": self.cycles.records,
            "sleeps": self.sleeps.records,
            "recoveries": self.recoveries.records,
            "workouts": self.workouts.records,
        }

    @classmethod
    def from_snapshot(cls, profile: MemberProfile, saved: dict) -> MemberData:
        """Rebuild the records and indexes that :meth:`to_snapshot` saved."""
        version, internal, gauss = saved["rng"]
        rng = random.Random()
        rng.setstate((version, tuple(internal), gauss))
        data = cls(profile=profile, rng=rng, next_v1=int(saved["next_v1"]))
        for rec in saved["cycles"]:
            data.add_cycle(rec)
        for rec in saved["sleeps"]:
            data.add_sleep(rec)
        for rec in saved["recoveries"]:
            data.add_recovery(rec, data.sleep_by_id[rec["sleep_id"]])
        for rec in saved["workouts"]:
            data.add_workout(rec)
        return data


# -- record builders ----------------------------------------------------------------


def sleep_score(rng: random.Random, duration_ms: int, nap: bool, history_index: int) -> dict:
    """A realistic SleepScore for a sleep of ``duration_ms``."""
    awake = int(duration_ms * rng.uniform(0.04, 0.14))
    no_data = 0 if rng.random() < 0.85 else rng.randint(60_000, 20 * MINUTE_MS)
    no_data = min(no_data, duration_ms - awake)
    asleep = duration_ms - awake - no_data
    sws = int(asleep * rng.uniform(0.15, 0.25))
    rem = int(asleep * rng.uniform(0.17, 0.27))
    light = asleep - sws - rem
    score: dict = {
        "stage_summary": {
            "total_in_bed_time_milli": duration_ms,
            "total_awake_time_milli": awake,
            "total_no_data_time_milli": no_data,
            "total_light_sleep_time_milli": light,
            "total_slow_wave_sleep_time_milli": sws,
            "total_rem_sleep_time_milli": rem,
            "sleep_cycle_count": max(0, asleep // (90 * MINUTE_MS)),
            "disturbance_count": rng.randint(0, 4 if nap else 18),
        },
        "sleep_needed": {
            "baseline_milli": rng.randint(25_200_000, 30_600_000),
            "need_from_sleep_debt_milli": rng.randint(0, 3_600_000),
            "need_from_recent_strain_milli": rng.randint(0, 1_800_000),
            "need_from_recent_nap_milli": -rng.randint(0, 1_800_000) if rng.random() < 0.2 else 0,
        },
        "respiratory_rate": round(rng.uniform(12.5, 18.5), 6),
        "sleep_efficiency_percentage": round(100.0 * asleep / duration_ms, 6),
    }
    # Sleep need (and so performance) is unknown for a member's first sleeps;
    # consistency needs a few days of history and never applies to naps.
    if history_index >= 3:
        score["sleep_performance_percentage"] = float(rng.randint(45, 100))
    if history_index >= 4 and not nap:
        score["sleep_consistency_percentage"] = float(rng.randint(40, 98))
    return score


def recovery_score(rng: random.Random, profile: MemberProfile, calibrating: bool) -> dict:
    """A realistic RecoveryScore; SpO2 and skin temperature only on WHOOP 4.0."""
    score: dict = {
        "user_calibrating": calibrating,
        "recovery_score": float(rng.randint(1, 99)),
        "resting_heart_rate": float(rng.randint(44, 72)),
        "hrv_rmssd_milli": round(rng.uniform(18.0, 145.0), 6),
    }
    if profile.device >= "4.0":
        score["spo2_percentage"] = round(rng.uniform(94.0, 99.5), 4)
        score["skin_temp_celsius"] = round(rng.uniform(32.2, 35.4), 4)
    return score


def workout_score(rng: random.Random, profile: MemberProfile, sport: tuple, dur_ms: int) -> dict:
    """A realistic WorkoutScore whose zone durations add up to the workout."""
    weights = [rng.uniform(0.2, 1.0) for _ in range(6)]
    total = sum(weights)
    zones = [int(dur_ms * w / total) for w in weights]
    zones[0] += dur_ms - sum(zones)
    names = ["zero", "one", "two", "three", "four", "five"]
    avg_hr = rng.randint(95, 165)
    score: dict = {
        "strain": round(rng.uniform(2.0, 19.5), 6),
        "average_heart_rate": avg_hr,
        "max_heart_rate": min(profile.max_heart_rate, avg_hr + rng.randint(10, 40)),
        "kilojoule": round(dur_ms / MINUTE_MS * rng.uniform(25, 60), 6),
        "percent_recorded": 100.0 if rng.random() < 0.8 else round(rng.uniform(55, 99.9), 4),
        "zone_durations": {f"zone_{n}_milli": z for n, z in zip(names, zones, strict=True)},
    }
    _name, _sid, has_distance, has_altitude = sport
    if has_distance and rng.random() < 0.85:
        score["distance_meter"] = round(dur_ms / MINUTE_MS * rng.uniform(80, 400), 6)
    if has_altitude and rng.random() < 0.6:
        score["altitude_gain_meter"] = round(rng.uniform(5, 600), 6)
        score["altitude_change_meter"] = round(rng.uniform(-50, 50), 6)
    return score


def cycle_score(rng: random.Random, profile: MemberProfile, fraction: float = 1.0) -> dict:
    """A realistic CycleScore; ``fraction`` < 1 for the cycle still in progress."""
    return {
        "strain": round(rng.uniform(4.0, 19.0) * fraction, 6),
        "kilojoule": round(rng.uniform(6_500, 14_000) * fraction, 6),
        "average_heart_rate": rng.randint(56, 82),
        "max_heart_rate": rng.randint(120, profile.max_heart_rate),
    }


def stamp(rng: random.Random, end_ms: int, now_ms: int) -> tuple[str, str]:
    """created_at / updated_at for something that ended at ``end_ms``."""
    created = min(now_ms, end_ms + rng.randint(30_000, 20 * MINUTE_MS))
    updated = created
    if rng.random() < 0.15:  # records are edited after the fact
        updated = min(now_ms, created + rng.randint(MINUTE_MS, 8 * HOUR_MS))
    return iso_ms(created), iso_ms(updated)


def build_sleep(
    data: MemberData,
    cycle: dict,
    start_ms: int,
    end_ms: int,
    nap: bool,
    state: str,
    now_ms: int,
    history_index: int = 10,
    tz: str | None = None,
) -> dict:
    """A Sleep record (score only when SCORED)."""
    rng = data.rng
    created, updated = stamp(rng, end_ms, now_ms)
    rec: dict = {
        "id": make_uuid(rng),
        "cycle_id": cycle["id"],
        "user_id": data.profile.user_id,
        "created_at": created,
        "updated_at": updated,
        "start": iso_ms(start_ms),
        "end": iso_ms(end_ms),
        "timezone_offset": tz or cycle["timezone_offset"],
        "nap": nap,
        "score_state": state,
    }
    if rng.random() < 0.3:
        rec["v1_id"] = data.new_v1_id()
    if state == SCORED:
        rec["score"] = sleep_score(rng, end_ms - start_ms, nap, history_index)
    return rec


def build_recovery(
    data: MemberData,
    sleep: dict,
    now_ms: int,
    calibrating: bool = False,
    sleep_end_ms: int | None = None,
) -> dict:
    """The Recovery that follows a (non-nap) sleep; its state mirrors the sleep's."""
    rng = data.rng
    if sleep_end_ms is None:
        sleep_end_ms = parse_datetime_ms(sleep["end"])
    created, updated = stamp(rng, sleep_end_ms, now_ms)
    rec: dict = {
        "cycle_id": sleep["cycle_id"],
        "sleep_id": sleep["id"],
        "user_id": data.profile.user_id,
        "created_at": created,
        "updated_at": max(updated, sleep["updated_at"]),
        "score_state": sleep["score_state"],
    }
    if sleep["score_state"] == SCORED:
        rec["score"] = recovery_score(rng, data.profile, calibrating)
    return rec


def build_workout(
    data: MemberData,
    start_ms: int,
    end_ms: int,
    tz: str,
    state: str,
    now_ms: int,
    sport: tuple | None = None,
) -> dict:
    """A Workout record (score only when SCORED)."""
    rng = data.rng
    sport = sport or SPORTS[rng.randrange(len(SPORTS))]
    created, updated = stamp(rng, end_ms, now_ms)
    rec: dict = {
        "id": make_uuid(rng),
        "user_id": data.profile.user_id,
        "created_at": created,
        "updated_at": updated,
        "start": iso_ms(start_ms),
        "end": iso_ms(end_ms),
        "timezone_offset": tz,
        "sport_name": sport[0],
        "score_state": state,
    }
    if rng.random() < 0.3:
        rec["v1_id"] = data.new_v1_id()
    if rng.random() < 0.5:
        rec["sport_id"] = sport[1]
    if state == SCORED:
        rec["score"] = workout_score(rng, data.profile, sport, end_ms - start_ms)
    return rec


def _offset_for_day(profile: MemberProfile, i: int, days: int) -> int:
    """The member's offset on day ``i`` (0 = oldest); travellers spend a stretch abroad."""
    if profile.travel_tz_minutes is not None and days >= 20:
        lo, hi = int(days * 0.55), int(days * 0.55) + 9
        if lo <= i < hi:
            return profile.travel_tz_minutes
    return profile.tz_minutes


def _state(rng: random.Random, forced: dict[int, str], newest_index: int, rate: float) -> str:
    """Score state for the record ``newest_index`` places from the newest."""
    if newest_index in forced:
        return forced[newest_index]
    return UNSCORABLE if rng.random() < rate else SCORED


def generate(seed: int, profile: MemberProfile) -> MemberData:
    """Generate ``profile.days`` days of history ending at ``profile.anchor_ms``."""
    rng = random.Random(f"data:{seed}:{profile.user_id}")
    data = MemberData(profile=profile, rng=rng)
    now = profile.anchor_ms
    days = max(1, profile.days)

    # Sleep onsets, one per local evening, from `days` days ago until just after now.
    anchor_date = datetime.fromtimestamp(now / 1000, tz=UTC).date()
    onsets: list[tuple[int, int]] = []  # (utc ms, offset minutes)
    for i in range(days + 3):
        offset = _offset_for_day(profile, i, days)
        local_date = anchor_date - timedelta(days=days + 1 - i)
        midnight = int(
            datetime(local_date.year, local_date.month, local_date.day, tzinfo=UTC).timestamp()
        )
        local_ms = (23 * 60 + rng.randint(-80, 75)) * MINUTE_MS + rng.randint(0, MINUTE_MS - 1)
        onsets.append((midnight * 1000 + local_ms - offset * MINUTE_MS, offset))
    onsets = [o for o in onsets if o[0] <= now][-(days + 1) :] + [o for o in onsets if o[0] > now][
        :1
    ]
    ncycles = len(onsets) - 1  # the last onset (after now) only closes the current cycle

    cycle_forced = {5: PENDING, 9: UNSCORABLE}
    sleep_forced = {3: PENDING, 7: UNSCORABLE}
    workout_forced = {2: PENDING, 4: UNSCORABLE}
    pending_workouts: list[tuple[int, int, str]] = []
    main_sleep_index = 0
    base_cycle_id = profile.user_id * 1_000_000 + 400_000

    for ci in range(ncycles):
        start, offset = onsets[ci]
        next_start = onsets[ci + 1][0]
        current = ci == ncycles - 1
        newest_index = ncycles - 1 - ci
        tz = tz_designator(offset)
        cyc_end = None if current else next_start
        if current:
            created = iso_ms(min(now, start + rng.randint(60_000, 10 * MINUTE_MS)))
            updated = iso_ms(now - rng.randint(0, 5 * MINUTE_MS))
            state = SCORED
        else:
            created, updated = stamp(rng, start + 10 * MINUTE_MS, now)
            state = _state(rng, cycle_forced, newest_index, 0.015)
        cycle: dict = {
            "id": base_cycle_id + ci,
            "user_id": profile.user_id,
            "created_at": created,
            "updated_at": max(created, updated),
            "start": iso_ms(start),
            "timezone_offset": tz,
            "score_state": state,
        }
        if cyc_end is not None:
            cycle["end"] = iso_ms(cyc_end)
        if state == SCORED:
            fraction = min(1.0, (now - start) / DAY_MS) if current else 1.0
            cycle["score"] = cycle_score(rng, profile, fraction)
        data.add_cycle(cycle, start, cyc_end)

        # The main sleep opens the cycle; it exists only once it has ended.
        duration = rng.randint(int(5.8 * HOUR_MS), int(9.3 * HOUR_MS))
        wake = start + duration
        if wake <= now:
            if now - wake < HOUR_MS:
                sleep_state = PENDING  # just woke up: WHOOP is still scoring
            else:
                sleep_state = _state(rng, sleep_forced, newest_index, 0.02)
            sleep = build_sleep(data, cycle, start, wake, False, sleep_state, now, main_sleep_index)
            data.add_sleep(sleep, start, wake)
            recovery = build_recovery(data, sleep, now, main_sleep_index < 4, wake)
            data.add_recovery(recovery, sleep, start, wake)
            main_sleep_index += 1

        horizon = now if current else next_start
        # Naps on some afternoons.
        if rng.random() < 0.12:
            nap_start = wake + rng.randint(4 * HOUR_MS, 8 * HOUR_MS)
            nap_end = nap_start + rng.randint(20 * MINUTE_MS, 90 * MINUTE_MS)
            if nap_end <= min(horizon - HOUR_MS, now):
                nap_state = SCORED if rng.random() > 0.05 else UNSCORABLE
                nap = build_sleep(data, cycle, nap_start, nap_end, True, nap_state, now)
                data.add_sleep(nap, nap_start, nap_end)
        # Workouts: none, one or two a day, between waking and the next sleep.
        count = rng.choices([0, 1, 2], weights=[35, 50, 15])[0]
        slot = wake + 30 * MINUTE_MS
        for _ in range(count):
            w_start = slot + rng.randint(0, 5 * HOUR_MS)
            w_end = w_start + rng.randint(20 * MINUTE_MS, 120 * MINUTE_MS)
            if w_end > min(horizon - 30 * MINUTE_MS, now):
                break
            pending_workouts.append((w_start, w_end, tz))
            slot = w_end + 30 * MINUTE_MS

    # Workout states are forced by position from the newest, so build them last.
    for wi, (w_start, w_end, tz) in enumerate(reversed(pending_workouts)):
        state = _state(rng, workout_forced, wi, 0.02)
        data.add_workout(build_workout(data, w_start, w_end, tz, state, now), w_start, w_end)
    return data
