"""Every route's responses validate against WHOOP's OpenAPI document, for every member kind."""

from __future__ import annotations

import copy
import json

import pytest

COLLECTIONS = {
    "/v2/cycle": "cycles",
    "/v2/recovery": "recoveries",
    "/v2/activity/sleep": "sleeps",
    "/v2/activity/workout": "workouts",
}
# Member kinds: WHOOP 4.0 traveller, WHOOP 3.0 (no SpO2 / skin temp), a brand-new member,
# a member on UTC ("Z") and one on a half-hour offset.
MEMBERS = [
    {"days": 60},
    {"days": 60, "device": "3.0"},
    {"days": 3},
    {"days": 40, "timezone_offset": "Z"},
    {"days": 40, "timezone_offset": "+05:30", "device": "3.0"},
]


def test_validator_rejects_what_whoop_would_not_send(whoop, validate):
    """The validation is real: a malformed record fails it."""
    app = whoop.new_app()
    token = whoop.tokens(app, whoop.new_member(days=5))["access_token"]
    resp = validate(whoop.api(token, "/v2/activity/sleep", limit=1))
    body = resp.json()
    for mutate in (
        lambda r: r.update(id="not-a-uuid"),
        lambda r: r.update(start="yesterday"),
        lambda r: r.pop("nap"),
        lambda r: r.update(score_state="DONE"),
        lambda r: r.update(unexpected_field=1),
    ):
        broken = copy.deepcopy(body)
        mutate(broken["records"][0])
        resp._content = json.dumps(broken).encode()
        with pytest.raises(Exception):  # noqa: B017 - any validation error will do
            validate(resp)


@pytest.mark.parametrize("kind", MEMBERS, ids=["4.0-traveller", "3.0", "new", "utc", "+05:30"])
def test_every_route_validates(whoop, validate, kind):
    app = whoop.new_app()
    member = whoop.new_member(**kind)
    token = whoop.tokens(app, member)["access_token"]

    profile = validate(whoop.api(token, "/v2/user/profile/basic")).json()
    assert profile["user_id"] == member["user_id"] and profile["email"] == member["email"]
    validate(whoop.api(token, "/v2/user/measurement/body"))

    records: dict[str, list[dict]] = {}
    for path, name in COLLECTIONS.items():
        records[name] = []
        next_token = None
        while True:
            params = {"limit": 25, **({"nextToken": next_token} if next_token else {})}
            body = validate(whoop.api(token, path, **params)).json()
            records[name] += body["records"]
            next_token = body.get("next_token")
            if not next_token:
                break
        assert records[name], name
    counts = whoop.control("GET", f"/members/{member['user_id']}", 200)["counts"]
    assert {k: len(v) for k, v in records.items()} == counts

    # By-id routes for every record.
    for cycle in records["cycles"]:
        validate(whoop.api(token, f"/v2/cycle/{cycle['id']}"))
    with_recovery = {r["cycle_id"] for r in records["recoveries"]}
    for cycle in records["cycles"][:15]:
        sleep = whoop.api(token, f"/v2/cycle/{cycle['id']}/sleep")
        recovery = whoop.api(token, f"/v2/cycle/{cycle['id']}/recovery")
        validate(sleep), validate(recovery)
        expected = 200 if cycle["id"] in with_recovery else 404
        assert (sleep.status_code, recovery.status_code) == (expected, expected)
        if expected == 200:
            assert sleep.json()["cycle_id"] == cycle["id"] and not sleep.json()["nap"]
            assert recovery.json()["sleep_id"] == sleep.json()["id"]
    for sleep in records["sleeps"]:
        assert validate(whoop.api(token, f"/v2/activity/sleep/{sleep['id']}")).json() == sleep
    for workout in records["workouts"]:
        assert validate(whoop.api(token, f"/v2/activity/workout/{workout['id']}")).json() == workout
    legacy = [r for r in records["sleeps"] + records["workouts"] if "v1_id" in r]
    for rec in legacy[:5]:
        mapped = validate(whoop.api(token, f"/v1/activity-mapping/{rec['v1_id']}")).json()
        assert mapped == {"v2_activity_id": rec["id"]}

    # Error answers are ones the document lists for the route.
    for path in (
        "/v2/cycle/1",
        "/v2/cycle/1/sleep",
        "/v2/cycle/1/recovery",
        "/v2/activity/sleep/00000000-0000-4000-8000-000000000000",
        "/v2/activity/workout/00000000-0000-4000-8000-000000000000",
        "/v1/activity-mapping/1",
    ):
        assert validate(whoop.api(token, path)).status_code == 404, path
    for path in ("/v2/cycle/abc", "/v2/activity/sleep/not-a-uuid", "/v2/activity/workout/x"):
        assert validate(whoop.api(token, path)).status_code == 400, path
    for path in COLLECTIONS:
        assert validate(whoop.api(token, path, limit=26)).status_code == 400
        assert validate(whoop.api("not-a-token", path)).status_code == 401
    assert validate(whoop.api(token, "/v2/user/access", method="DELETE")).status_code == 204
    assert validate(whoop.api(token, "/v2/cycle")).status_code == 401


def _collect(whoop, token: str) -> dict[str, list[dict]]:
    return {name: whoop.all_pages(token, path, limit=25) for path, name in COLLECTIONS.items()}


def test_data_has_the_real_edge_cases(whoop):
    app = whoop.new_app()
    four = whoop.new_member(days=120)
    three = whoop.new_member(days=120, device="3.0")
    utc = whoop.new_member(days=30, timezone_offset="Z")
    data = {
        m["user_id"]: _collect(whoop, whoop.tokens(app, m)["access_token"])
        for m in (four, three, utc)
    }
    everything = {
        name: [r for d in data.values() for r in d[name]] for name in COLLECTIONS.values()
    }

    for name, recs in everything.items():
        states = {r["score_state"] for r in recs}
        assert states == {"SCORED", "PENDING_SCORE", "UNSCORABLE"}, name
        for rec in recs:
            assert ("score" in rec) == (rec["score_state"] == "SCORED"), rec
    # Exactly one current cycle per member, and it is the newest; ids are int64 beyond int32.
    for d in data.values():
        open_cycles = [c for c in d["cycles"] if "end" not in c]
        assert open_cycles == [d["cycles"][0]]
        assert all(c["id"] > 2**31 for c in d["cycles"])
    # Naps exist, have no recovery and no consistency.
    naps = [s for s in everything["sleeps"] if s["nap"]]
    assert naps
    recovery_sleeps = {r["sleep_id"] for r in everything["recoveries"]}
    assert not recovery_sleeps & {n["id"] for n in naps}
    assert all("sleep_consistency_percentage" not in n.get("score", {}) for n in naps)
    # SpO2 and skin temperature only on WHOOP 4.0.
    scored = lambda recs: [r["score"] for r in recs if "score" in r]  # noqa: E731
    assert all(
        "spo2_percentage" in s and "skin_temp_celsius" in s
        for s in scored(data[four["user_id"]]["recoveries"])
    )
    assert all(
        "spo2_percentage" not in s and "skin_temp_celsius" not in s
        for s in scored(data[three["user_id"]]["recoveries"])
    )
    # Early sleeps lack performance / consistency; calibrating recoveries exist.
    sleep_scores = scored(everything["sleeps"])
    assert any("sleep_performance_percentage" not in s for s in sleep_scores)
    assert any("sleep_consistency_percentage" not in s for s in sleep_scores)
    assert any("sleep_performance_percentage" in s for s in sleep_scores)
    assert any(s["user_calibrating"] for s in scored(everything["recoveries"]))
    # Workouts with and without distance / altitude / legacy ids.
    w_scores = scored(everything["workouts"])
    assert any("distance_meter" in s for s in w_scores) and any(
        "distance_meter" not in s for s in w_scores
    )
    assert any("altitude_gain_meter" in s for s in w_scores)
    assert any("sport_id" in w for w in everything["workouts"])
    assert any("sport_id" not in w for w in everything["workouts"])
    assert any("v1_id" in s for s in everything["sleeps"])
    # Timezone offsets: Z, negative, and a traveller's change of offset.
    offsets = {c["timezone_offset"] for c in everything["cycles"]}
    assert "Z" in offsets and "-05:00" in offsets and len(offsets) >= 3
    assert len({c["timezone_offset"] for c in data[four["user_id"]]["cycles"]}) == 2
