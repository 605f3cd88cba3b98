"""WhoopClient paging and by-id fetches against the real sandbox over HTTP."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.whoop.support import pages, statuses
from whoopadmin.sandbox import changes
from whoopadmin.sandbox.data import parse_datetime_ms
from whoopadmin.whoop.api import WhoopError, get_profile
from whoopadmin.whoop.client import format_time

# Our collection name → the sandbox's own collection holding the same records.
COLLECTIONS = {
    "cycle": "cycles",
    "recovery": "recoveries",
    "activity/sleep": "sleeps",
    "activity/workout": "workouts",
}


def _ident(record: dict) -> str:
    """Recoveries have no id of their own: their sleep UUID identifies them."""
    return str(record.get("id", record.get("sleep_id")))


@pytest.mark.parametrize("kind", sorted(COLLECTIONS))
def test_a_year_of_every_collection_arrives_exactly_once(world, kind):
    member = world.member(days=365)
    client = world.client(world.tokens(member)["access_token"])
    got = list(client.iter_collection(kind, start=datetime(2000, 1, 1, tzinfo=UTC)))
    expected = getattr(world.sb.state.data(member.user_id), COLLECTIONS[kind]).records
    assert len(expected) >= 250  # really a year of data
    assert [_ident(r) for r in got] == [_ident(r) for r in expected]
    assert len({_ident(r) for r in got}) == len(got)  # no duplicates
    assert got == expected  # the records themselves, untouched
    # 25 a page: as few requests as possible.
    assert client.requests_sent == pages(len(expected), 25)


def test_a_window_sends_the_same_start_and_end_on_every_page(world, http):
    member = world.member(days=120)
    client = world.client(world.tokens(member)["access_token"])
    now = datetime.fromtimestamp(world.sb.state.clock.now(), UTC)
    start, end = now - timedelta(days=70), now - timedelta(days=10)
    sent = []
    http.hooks["response"].append(lambda r, *a, **k: sent.append(r.request.url))
    got = list(client.iter_collection("activity/sleep", start, end, limit=7))
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    # The sandbox's (and WHOOP's) window: records that intersect [start, end).
    expected = [
        r
        for r in world.sb.state.data(member.user_id).sleeps.records
        if parse_datetime_ms(r["start"]) < end_ms and parse_datetime_ms(r["end"]) > start_ms
    ]
    assert got == expected and len(sent) == pages(len(expected), 7) > 5
    for url in sent:
        assert f"start={format_time(start).replace(':', '%3A')}" in url
        assert f"end={format_time(end).replace(':', '%3A')}" in url
        assert "limit=7" in url
    assert "nextToken" not in sent[0] and all("nextToken=" in url for url in sent[1:])


@pytest.mark.parametrize("last_page", ["absent", "null", "empty"])
def test_the_last_page_ends_paging_whatever_its_next_token_looks_like(world, last_page):
    world.sb.state.update_config({"last_page_token": last_page})
    member = world.member(days=40)
    client = world.client(world.tokens(member)["access_token"])
    expected = world.sb.state.data(member.user_id).workouts.records
    got = list(client.iter_collection("activity/workout", limit=10))
    assert got == expected and client.requests_sent == pages(len(expected), 10)


def test_an_empty_window_is_one_request(world):
    member = world.member(days=5)
    client = world.client(world.tokens(member)["access_token"])
    assert (
        list(
            client.iter_collection("cycle", "1990-01-01T00:00:00.000Z", "1990-02-01T00:00:00.000Z")
        )
        == []
    )
    assert client.requests_sent == 1


def test_timestamps_are_utc_with_milliseconds():
    plus2 = timezone(timedelta(hours=2))
    assert format_time(datetime(2024, 3, 1, 1, 2, 3, 456789, tzinfo=plus2)) == (
        "2024-02-29T23:02:03.456Z"
    )
    assert format_time(datetime(2024, 3, 1, tzinfo=UTC)) == "2024-03-01T00:00:00.000Z"
    with pytest.raises(ValueError):
        format_time(datetime(2024, 3, 1))  # naive: which zone?


def test_bad_collection_names_and_limits_are_refused_before_any_request(world):
    client = world.client("irrelevant")
    with pytest.raises(ValueError):
        list(client.iter_collection("heart_rate"))
    for limit in (0, 26):
        with pytest.raises(ValueError):
            list(client.iter_collection("cycle", limit=limit))
    assert client.requests_sent == 0


def test_a_repeated_next_token_stops_paging_with_an_error(fake_whoop):
    pages = []

    def handler(request):
        pages.append(dict(request.args))
        # A broken server: every page says "there is more, ask for token B".
        return 200, {"records": [{"id": len(pages)}], "next_token": "B"}, {}

    server = fake_whoop(handler)
    from whoopadmin.whoop.client import WhoopClient

    with WhoopClient(server.api_base, "token") as client:
        seen = []
        with pytest.raises(WhoopError) as info:
            for record in client.iter_collection("cycle"):
                seen.append(record["id"])
    assert info.value.code == "bad_response"
    assert seen == [1, 2] and len(pages) == 2  # page 2 repeated B: stop, don't loop
    assert pages[1]["nextToken"] == "B"


@pytest.mark.parametrize(
    "body",
    [{"next_token": None}, {"records": "nope"}, [1, 2], {"records": [1], "next_token": None}],
)
def test_pages_without_a_records_list_are_bad_responses(fake_whoop, body):
    server = fake_whoop(lambda request: (200, body, {}))
    from whoopadmin.whoop.client import WhoopClient

    with WhoopClient(server.api_base, "token") as client, pytest.raises(WhoopError) as info:
        list(client.iter_collection("recovery"))
    assert info.value.code == "bad_response"


def test_objects_by_id_equal_the_sandbox_records(world):
    member = world.member(days=30)
    client = world.client(world.tokens(member)["access_token"])
    data = world.sb.state.data(member.user_id)
    for cycle in data.cycles.records[:5]:
        assert client.cycle(cycle["id"]) == cycle
        sleep_id = data.main_sleep_by_cycle.get(cycle["id"])
        if sleep_id is not None:
            assert client.cycle_sleep(cycle["id"]) == data.sleep_by_id[sleep_id]
            assert client.cycle_recovery(cycle["id"]) == data.recovery_by_cycle[cycle["id"]]
    for sleep in data.sleeps.records[:5]:
        assert client.sleep(sleep["id"]) == sleep
    for workout in data.workouts.records[:5]:
        assert client.workout(workout["id"]) == workout
    assert client.profile() == {
        "user_id": member.user_id,
        "email": member.email,
        "first_name": member.first_name,
        "last_name": member.last_name,
    }
    assert client.body_measurement() == {
        "height_meter": member.height_meter,
        "weight_kilogram": member.weight_kilogram,
        "max_heart_rate": member.max_heart_rate,
    }


def test_missing_and_deleted_objects_are_not_found(world, http):
    member = world.member(days=30)
    client = world.client(world.tokens(member)["access_token"])
    data = world.sb.state.data(member.user_id)
    missing_cycle = max(data.cycle_by_id) + 1000
    calls = [
        lambda: client.cycle(missing_cycle),
        lambda: client.cycle_sleep(missing_cycle),
        lambda: client.cycle_recovery(missing_cycle),
        lambda: client.sleep(str(uuid.uuid4())),
        lambda: client.workout(uuid.uuid4()),
    ]
    workout = data.workouts.records[0]
    changes.delete_workout(world.sb.state, member.user_id, workout["id"])
    calls.append(lambda: client.workout(workout["id"]))
    for call in calls:
        with pytest.raises(WhoopError) as info:
            call()
        assert (info.value.code, info.value.status) == ("not_found", 404)
    assert statuses(http) == [404] * len(calls)  # a 404 is final: never retried


def test_ids_that_cannot_be_whoop_ids_never_reach_a_url(world):
    client = world.client("irrelevant")
    for bad in ("12/../../user", True, 2**63, 1.5):
        with pytest.raises(ValueError):
            client.cycle(bad)
    for bad in ("../profile", "not-a-uuid", ""):
        with pytest.raises(ValueError):
            client.sleep(bad)
        with pytest.raises(ValueError):
            client.workout(bad)
    assert client.requests_sent == 0


def test_get_profile_and_the_client_agree(world, http):
    member = world.member(days=1)
    token = world.tokens(member)["access_token"]
    profile = get_profile(world.sb.api_base, token, session=http)
    assert profile.user_id == world.client(token).profile()["user_id"] == member.user_id
