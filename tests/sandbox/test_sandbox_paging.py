"""Pagination exactly as documented: limit, start/end, nextToken in, next_token out."""

from __future__ import annotations

import pytest

from whoopadmin.sandbox.data import iso_ms, parse_datetime_ms

COLLECTIONS = {
    "/v2/cycle": "cycles",
    "/v2/recovery": "recoveries",
    "/v2/activity/sleep": "sleeps",
    "/v2/activity/workout": "workouts",
}


def _key(record: dict) -> str:
    return str(record.get("id", record.get("sleep_id")))


def _start(record: dict, sleeps: dict[str, dict]) -> str:
    # Recoveries are ordered by the start of their sleep.
    return record["start"] if "start" in record else sleeps[record["sleep_id"]]["start"]


@pytest.fixture(scope="module")
def year():
    """One sandbox with a member who has a year of data, shared by the paging tests."""
    import requests

    from whoopadmin.sandbox.server import SandboxServer

    with SandboxServer(seed=3) as sb, requests.Session() as http:
        http.trust_env = False
        app = sb.state.create_app(
            redirect_uris=["http://127.0.0.1:9/cb"],
            rate_limit_per_minute=10**9,
            rate_limit_per_day=10**9,
        )
        member = sb.state.create_member(days=365)
        resp = http.post(
            f"{sb.url}/_sandbox/tokens",
            json={"client_id": app.client_id, "user_id": member.user_id},
        )
        token = resp.json()["access_token"]
        counts = http.get(f"{sb.url}/_sandbox/members/{member.user_id}").json()["counts"]
        yield sb, http, token, counts


def _pages(http, sb, token, path, **params):
    records, pages, next_token = [], 0, None
    while True:
        query = dict(params, **({"nextToken": next_token} if next_token else {}))
        resp = http.get(
            sb.api_base + path, params=query, headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        limit = int(params.get("limit", 10))
        assert len(body["records"]) <= limit
        pages += 1
        records += body["records"]
        next_token = body.get("next_token")
        if not next_token:
            return records, pages
        assert len(body["records"]) == limit  # only the last page may be short


@pytest.mark.parametrize("path", list(COLLECTIONS))
def test_every_record_exactly_once_for_every_page_size(year, path):
    sb, http, token, counts = year
    total = counts[COLLECTIONS[path]]
    assert total > 280  # a year of data
    sleeps = {s["id"]: s for s in _pages(http, sb, token, "/v2/activity/sleep", limit=25)[0]}
    reference = None
    for limit in range(1, 26):
        records, pages = _pages(http, sb, token, path, limit=limit)
        keys = [_key(r) for r in records]
        assert len(keys) == len(set(keys)) == total, limit
        assert pages == -(-total // limit)
        starts = [_start(r, sleeps) for r in records]
        assert starts == sorted(starts, reverse=True)  # newest first
        if reference is None:
            reference = keys
        assert keys == reference


def test_default_limit_is_ten(year):
    sb, http, token, _counts = year
    resp = http.get(sb.api_base + "/v2/cycle", headers={"Authorization": f"Bearer {token}"})
    assert len(resp.json()["records"]) == 10 and resp.json()["next_token"]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 26},
        {"limit": 100},
        {"limit": 0},
        {"limit": -1},
        {"limit": "ten"},
        {"limit": "2.5"},
        {"nextToken": "%%%"},
        {"nextToken": "bm90LWEtdG9rZW4"},
        {"start": "yesterday"},
        {"start": "2024-01-01T00:00:00"},  # no offset
        {"end": "2024-13-01T00:00:00Z"},
    ],
)
def test_bad_parameters_are_400(year, params):
    sb, http, token, _counts = year
    for path in COLLECTIONS:
        resp = http.get(
            sb.api_base + path, params=params, headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status_code == 400, (path, params)
        assert resp.json()["error"] == "invalid_request"


def test_start_inclusive_end_exclusive(year):
    sb, http, token, _counts = year
    cycles = _pages(http, sb, token, "/v2/cycle", limit=25)[0]
    middle = cycles[100]
    start, end = middle["start"], middle["end"]

    def window(path="/v2/cycle", **params):
        return [r["id"] for r in _pages(http, sb, token, path, limit=7, **params)[0]]

    # The cycle's own span holds exactly that cycle; its neighbours only touch the bounds.
    assert window(start=start, end=end) == [middle["id"]]
    # end is exclusive: ending at the cycle's start leaves it out.
    assert middle["id"] not in window(end=start)
    assert window(end=start)[0] == cycles[101]["id"]
    # start is inclusive.
    assert window(start=start)[-1] == middle["id"]
    # A start inside the cycle still returns it: it intersects (the documented wording).
    inside = iso_ms(parse_datetime_ms(start) + 3_600_000)
    assert window(start=inside)[-1] == middle["id"]
    # Offsets other than Z mean the same instant.
    assert window(start=start.replace("Z", "+00:00"), end=end) == [middle["id"]]
    # Default end is now: the current cycle (no end) is included.
    assert window(start=cycles[1]["start"]) == [cycles[0]["id"], cycles[1]["id"]]
    assert "end" not in cycles[0]
    # The current cycle intersects any recent start, however long it has been going.
    recent = iso_ms(sb.state.clock.now_ms() - 1_000)
    assert window(start=recent) == [cycles[0]["id"]]
    assert window(path="/v2/activity/sleep", start=recent) == []
    # An empty window is an empty page with no next_token.
    resp = http.get(
        sb.api_base + "/v2/cycle",
        params={"start": end, "end": start},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.json() == {"records": []}


def test_windows_partition_records_in_start_mode(year):
    """With range_mode=start, adjacent windows share nothing and miss nothing."""
    sb, http, token, counts = year
    http.patch(sb.url + "/_sandbox/config", json={"range_mode": "start"}).close()
    try:
        for path, name in COLLECTIONS.items():
            now = sb.state.clock.now_ms()
            bounds = [now - k * 7 * 86_400_000 for k in range(60)]
            seen = []
            for hi, lo in zip(bounds, bounds[1:], strict=False):
                page, _ = _pages(http, sb, token, path, limit=25, start=iso_ms(lo), end=iso_ms(hi))
                seen += [_key(r) for r in page]
            assert len(seen) == len(set(seen)) == counts[name], path
        records = _pages(http, sb, token, "/v2/cycle", limit=25)[0]
        inside = iso_ms(parse_datetime_ms(records[5]["start"]) + 1)
        cycles = _pages(http, sb, token, "/v2/cycle", limit=25, start=inside)[0]
        assert len(cycles) == 5  # a cycle that started before `start` is left out
    finally:
        http.patch(sb.url + "/_sandbox/config", json={"range_mode": "overlap"}).close()


def test_same_window_on_every_page(year):
    sb, http, token, _counts = year
    cycles = _pages(http, sb, token, "/v2/cycle", limit=25)[0]
    start, end = cycles[60]["start"], cycles[10]["start"]
    got = [c["id"] for c in _pages(http, sb, token, "/v2/cycle", limit=4, start=start, end=end)[0]]
    assert got == [c["id"] for c in cycles[11:61]]


@pytest.mark.parametrize("mode", ["null", "empty", "absent"])
def test_last_page_token_variants(year, mode):
    sb, http, token, _counts = year
    http.patch(sb.url + "/_sandbox/config", json={"last_page_token": mode}).close()
    try:
        cycles = _pages(http, sb, token, "/v2/cycle", limit=25)[0]
        resp = http.get(
            sb.api_base + "/v2/cycle",
            params={"start": cycles[2]["start"], "limit": 25},
            headers={"Authorization": f"Bearer {token}"},
        )
        body = resp.json()
        expected = {"null": None, "empty": ""}
        if mode == "absent":
            assert "next_token" not in body
        else:
            assert body["next_token"] == expected[mode]
    finally:
        http.patch(sb.url + "/_sandbox/config", json={"last_page_token": "absent"}).close()
