"""``GET /api/v1/users/<id>/daily``: one row per local day, joined from the stored records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest


def _local_day(text: str, offset: str, shift: timedelta = timedelta(0)) -> str:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00")) + shift
    if offset in ("Z", None):
        zone = UTC
    else:
        sign = -1 if offset[0] == "-" else 1
        zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    return moment.astimezone(zone).date().isoformat()


def test_days_join_cycle_sleep_recovery_and_workouts(
    configured_app, backfilled, api, sandbox, member
):
    md = sandbox.state.data(member.user_id)
    today = datetime.now(UTC).date()
    query = {"start": (today - timedelta(days=20)).isoformat(), "end": today.isoformat()}
    body = api.get(f"/users/{backfilled}/daily", query_string=query).json
    assert body["provider"] == "whoop" and body["units"]["strain"] == "strain"
    assert body["units"]["hrv_rmssd"] == "ms" and body["units"]["sleep_performance"] == "%"
    days = {row["date"]: row for row in body["days"]}
    assert list(days) == sorted(days) and len(days) == len(body["days"])
    by_cycle = {row["cycle_id"]: row for row in body["days"] if row["cycle_id"]}
    checked = 0
    for cycle in md.cycles.records:
        day = _local_day(cycle["start"], cycle["timezone_offset"], timedelta(hours=12))
        if day > query["end"]:
            continue
        row = by_cycle[str(cycle["id"])]
        assert row["date"] == day and row["provider"] == "whoop"
        if cycle.get("score_state") == "SCORED":
            assert row["strain"] == cycle["score"]["strain"]
            assert row["energy"] == cycle["score"]["kilojoule"]
        recovery = md.recovery_by_cycle.get(cycle["id"])
        if recovery and recovery.get("score_state") == "SCORED":
            assert row["recovery_id"] == recovery["sleep_id"]
            assert row["recovery_score"] == recovery["score"]["recovery_score"]
            assert row["hrv_rmssd"] == recovery["score"]["hrv_rmssd_milli"]
            assert row["resting_heart_rate"] == recovery["score"]["resting_heart_rate"]
        main = md.main_sleep_by_cycle.get(cycle["id"])
        if main:
            assert row["sleep_id"] == main
            sleep = next(s for s in md.sleeps.records if s["id"] == main)
            if sleep.get("score_state") == "SCORED":
                assert row["sleep_performance"] == sleep["score"].get(
                    "sleep_performance_percentage"
                )
        checked += 1
    assert checked >= 8
    workouts = [
        w
        for w in md.workouts.records
        if query["start"] <= _local_day(w["start"], w["timezone_offset"]) <= query["end"]
    ]
    assert sum(row["workout_count"] for row in body["days"]) == len(workouts)
    assert sorted(i for row in body["days"] for i in row["workout_ids"]) == sorted(
        w["id"] for w in workouts
    )
    for row in body["days"]:
        assert row["workout_count"] == len(row["workout_ids"])


def test_a_narrow_window_keeps_only_its_days(configured_app, backfilled, api):
    everything = api.get(f"/users/{backfilled}/daily").json["days"]
    assert everything
    one = everything[len(everything) // 2]["date"]
    body = api.get(f"/users/{backfilled}/daily", query_string={"start": one, "end": one}).json
    assert [row["date"] for row in body["days"]] == [one]
    assert body["start"] == body["end"] == one


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ({"start": "2026-02-01", "end": "2026-01-31"}, "invalid_window", "start"),
        ({"start": "2025-01-01", "end": "2026-01-02"}, "invalid_window", "start"),
        ({"start": "1969-12-31", "end": "1970-01-02"}, "invalid_window", "start"),
        ({"start": "2026-13-01"}, "invalid_request", "start"),
        ({"end": "2026-01-01T00:00:00Z"}, "invalid_request", "end"),
        ({"end": "yesterday"}, "invalid_request", "end"),
    ],
)
def test_bad_windows(configured_app, backfilled, api, query, code, field):
    response = api.get(f"/users/{backfilled}/daily", query_string=query)
    assert response.status_code == 400, response.json
    assert response.json["error"] == code and response.json["field"] == field


def test_366_days_are_allowed(configured_app, backfilled, api):
    query = {"start": "2024-01-01", "end": "2024-12-31"}  # a leap year: 366 days
    assert api.get(f"/users/{backfilled}/daily", query_string=query).status_code == 200
