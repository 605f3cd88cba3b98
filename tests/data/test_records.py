"""``GET /api/v1/users/<id>/<type>``: stored records, as the deliveries carry them, paged."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.api.support import ApiClient
from tests.conftest import run_jobs
from tests.data.conftest import new_key, subscribe, uid_of
from tests.factories import make_connection, make_link
from whoopadmin.audit import utcnow
from whoopadmin.connect.models import Link
from whoopadmin.destinations.models import Delivery
from whoopadmin.extensions import db
from whoopadmin.sync import service as sync
from whoopadmin.sync.models import WhoopRecord


def _wide():
    now = utcnow()
    return {
        "start": (now - timedelta(days=365)).isoformat().replace("+00:00", "Z"),
        "end": (now + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
    }


def _all_pages(api, uid, data_type, **params):
    records, cursor = [], None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        response = api.get(f"/users/{uid}/{data_type}", query_string=query)
        assert response.status_code == 200, response.json
        records += response.json["records"]
        cursor = response.json["next_cursor"]
        if cursor is None:
            return records


def test_records_match_the_deliveries(configured_app, linked, api, sandbox, member):
    """Every data event a destination received can be rebuilt from the API: same ids,
    indicator names, values and units."""
    subscribe(configured_app, ["sleep", "recovery", "workout", "cycle", "body"])
    run_jobs(configured_app, ("backfill",))
    uid = uid_of(configured_app, linked)
    with configured_app.app_context():
        delivered = [json.loads(p) for p in db.session.scalars(sa.select(Delivery.payload)).all()]
    assert delivered
    window = _wide()
    seen = 0
    for data_type in ("sleep", "recovery", "workout", "cycle", "body"):
        records = {r["id"]: r for r in _all_pages(api, uid, data_type, **window)}
        events = [e for e in delivered if e["type"] == data_type]
        assert len(events) == len(records) > 0, data_type
        for event in events:
            assert event["provider"] == "whoop" and event["user"]["provider"] == "whoop"
            record = records[event["data"]["whoop_id"]]
            assert record["provider"] == "whoop" and record["type"] == data_type
            assert record["indicators"] == event["data"]["indicators"]
            for name in ("start", "end", "timezone_offset", "score_state", "updated_at"):
                assert record[name] == event["data"][name], (data_type, name)
            assert "raw" not in record
            seen += 1
    md = sandbox.state.data(member.user_id)
    assert seen == (
        len(md.cycles.records)
        + len(md.sleeps.records)
        + len(md.recoveries.records)
        + len(md.workouts.records)
        + 1
    )


def test_formats(configured_app, backfilled, api):
    window = _wide()
    base = f"/users/{backfilled}/sleep"
    normalised = api.get(base, query_string=window).json
    raw = api.get(base, query_string={**window, "format": "raw"}).json
    both = api.get(base, query_string={**window, "format": "both"}).json
    assert normalised["format"] == "normalised" and raw["format"] == "raw"
    assert [r["id"] for r in normalised["records"]] == [r["id"] for r in raw["records"]]
    with configured_app.app_context():
        stored = {
            row.whoop_id: row.raw
            for row in db.session.scalars(sa.select(WhoopRecord).where(WhoopRecord.type == "sleep"))
        }
    for n, r, b in zip(normalised["records"], raw["records"], both["records"], strict=True):
        assert "raw" not in n and "indicators" not in r
        assert r["raw"] == stored[r["id"]] == b["raw"]
        assert b["indicators"] == n["indicators"]
        assert {"sleep_duration", "sleep_nap"} <= {i["name"] for i in n["indicators"]}


def test_window_is_by_the_records_own_start(configured_app, backfilled, api):
    with configured_app.app_context():
        starts = sorted(
            db.session.scalars(
                sa.select(WhoopRecord.start).where(WhoopRecord.type == "cycle")
            ).all()
        )
    middle = starts[len(starts) // 2]
    query = {
        "start": middle.isoformat().replace("+00:00", "Z"),
        "end": (middle + timedelta(seconds=1)).isoformat(),
    }
    response = api.get(f"/users/{backfilled}/cycle", query_string=query)
    assert len(response.json["records"]) == 1  # start inclusive, end exclusive
    query["start"] = (middle + timedelta(microseconds=1)).isoformat()
    assert api.get(f"/users/{backfilled}/cycle", query_string=query).json["records"] == []
    # Oldest first, within the window.
    records = _all_pages(api, backfilled, "cycle", **_wide())
    assert len(records) == len(starts)


def test_body_ignores_the_window(configured_app, backfilled, api):
    response = api.get(
        f"/users/{backfilled}/body",
        query_string={"start": "2001-01-01T00:00:00Z", "end": "2001-01-02T00:00:00Z"},
    )
    (body,) = response.json["records"]
    assert body["type"] == "body" and body["start"] is None
    assert {"height", "weight", "max_heart_rate"} <= {i["name"] for i in body["indicators"]}


def _synthetic_sleep(n: int, start):
    return {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "cycle_id": 1,
        "user_id": 1,
        "created_at": start.isoformat(),
        "updated_at": start.isoformat(),
        "start": start.isoformat().replace("+00:00", "Z"),
        "end": (start + timedelta(hours=7)).isoformat().replace("+00:00", "Z"),
        "timezone_offset": "+01:00",
        "nap": False,
        "score_state": "PENDING_SCORE",
    }


def test_pages_are_stable_under_concurrent_inserts(configured_app, backfilled, api):
    """Records stored between page fetches: none repeated, none of the earlier ones
    skipped, the newer ones found on later pages."""
    window = _wide()
    with configured_app.app_context():
        before = set(
            db.session.scalars(
                sa.select(WhoopRecord.whoop_id).where(WhoopRecord.type == "sleep")
            ).all()
        )
    assert len(before) >= 8
    seen, cursor, n, added_newer = [], None, 0, set()
    while True:
        query = {**window, "limit": 3, **({"cursor": cursor} if cursor else {})}
        response = api.get(f"/users/{backfilled}/sleep", query_string=query)
        assert response.status_code == 200, response.json
        page = response.json
        seen += [r["id"] for r in page["records"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # Between two fetches: one record older than everything (behind the cursor), one
        # newer than everything (ahead of it), and an existing one updated in place.
        with configured_app.app_context():
            link = db.session.scalar(sa.select(Link).where(Link.uid == backfilled))
            now = utcnow()
            old = _synthetic_sleep(1000 + n, now - timedelta(days=300))
            new = _synthetic_sleep(2000 + n, now - timedelta(minutes=30 - n))
            sync.store(link, "sleep", [old, new])
            added_newer.add(new["id"])
            n += 1
    assert n >= 2
    assert len(seen) == len(set(seen)), "a record came twice"
    assert before <= set(seen), "a record that existed before the first page was skipped"
    assert added_newer <= set(seen), "a record stored ahead of the cursor was not listed"


@pytest.mark.parametrize(
    ("query", "status", "code", "field"),
    [
        (
            {"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
            400,
            "invalid_window",
            "start",
        ),
        (
            {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
            400,
            "invalid_window",
            "start",
        ),
        (
            {"start": "2024-01-01T00:00:00Z", "end": "2025-01-02T00:00:01Z"},
            400,
            "invalid_window",
            "start",
        ),
        ({"start": "yesterday"}, 400, "invalid_request", "start"),
        ({"end": "2026-01-01"}, 400, "invalid_request", "end"),
        ({"start": "0001-01-01T00:00:00Z"}, 400, "invalid_window", "start"),
        ({"format": "xml"}, 400, "invalid_request", "format"),
        ({"limit": "0"}, 400, "invalid_request", "limit"),
        ({"limit": "501"}, 400, "invalid_request", "limit"),
        ({"limit": "ten"}, 400, "invalid_request", "limit"),
        ({"limit": "-1"}, 400, "invalid_request", "limit"),
        ({"cursor": "not-a-cursor"}, 400, "invalid_cursor", "cursor"),
        ({"cursor": "x" * 600}, 400, "invalid_cursor", "cursor"),
        ({"cursor": "é"}, 400, "invalid_cursor", "cursor"),
    ],
)
def test_bad_input(configured_app, backfilled, api, query, status, code, field):
    response = api.get(f"/users/{backfilled}/sleep", query_string=query)
    assert response.status_code == status, response.json
    assert response.json["error"] == code and response.json["field"] == field


def test_a_window_of_exactly_366_days_is_accepted(configured_app, backfilled, api):
    query = {"start": "2024-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"}
    assert api.get(f"/users/{backfilled}/sleep", query_string=query).status_code == 200


def test_forged_and_foreign_cursors(configured_app, backfilled, api):
    window = _wide()
    first = api.get(f"/users/{backfilled}/sleep", query_string={**window, "limit": 2}).json
    cursor = first["next_cursor"]
    assert cursor
    # The cursor works with its own query, and again (it is not single-use).
    for _ in range(2):
        again = api.get(
            f"/users/{backfilled}/sleep", query_string={**window, "limit": 2, "cursor": cursor}
        )
        assert again.status_code == 200
        assert again.json["records"][0]["id"] != first["records"][0]["id"]
    forged = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    for data_type, query in (
        ("sleep", {**window, "cursor": forged}),  # tampered with
        ("workout", {**window, "cursor": cursor}),  # another type's query
        ("sleep", {"end": window["end"], "cursor": cursor}),  # another window
    ):
        response = api.get(f"/users/{backfilled}/{data_type}", query_string=query)
        assert response.status_code == 400 and response.json["error"] == "invalid_cursor"
    # Signed with another secret: refused too.
    other = configured_app.config["SECRET_KEY"]
    configured_app.config["SECRET_KEY"] = "another-secret"
    try:
        response = api.get(f"/users/{backfilled}/sleep", query_string={**window, "cursor": cursor})
        assert response.status_code == 400
    finally:
        configured_app.config["SECRET_KEY"] = other


def test_unknown_type_and_unknown_or_foreign_users(configured_app, backfilled, api):
    response = api.get(f"/users/{backfilled}/steps")  # no such route
    assert response.status_code == 404 and response.json["error"] == "page_not_found"
    # GET is not a method of the backfill (POST only), whatever the data types' route.
    assert api.get(f"/users/{backfilled}/backfill", validate=False).status_code == 405
    assert api.get("/users/" + "0" * 32 + "/sleep").status_code == 404
    assert api.get("/users/nope/sleep").status_code == 404
    assert api.get("/users/a%0Ab/sleep").status_code == 400
    with configured_app.app_context():
        other = make_connection(environment="other", hostname="other.acme.test")
        other_id = other.id
        foreign = make_link(other, whoop_user_id=777, reference_id="elsewhere").uid
    # A key on the other connection only: the backfilled member is not there (404, as if
    # it did not exist); its own member is.
    scoped = ApiClient(configured_app, new_key(configured_app, "other", connection_ids=[other_id]))
    for path in (
        f"/users/{backfilled}/sleep",
        f"/users/{backfilled}/daily",
        f"/users/{backfilled}/status",
    ):
        response = scoped.get(path)
        assert response.status_code == 404 and response.json["error"] == "not_found", path
    assert scoped.get(f"/users/{foreign}/sleep").json["records"] == []


def test_permissions(configured_app, backfilled):
    no_read = ApiClient(
        configured_app, new_key(configured_app, "writer", permissions=["connect", "write"])
    )
    anonymous = ApiClient(configured_app, None)
    for path in (
        f"/users/{backfilled}/sleep",
        f"/users/{backfilled}/daily",
        f"/users/{backfilled}/status",
        "/users/nope/sleep",
    ):
        response = no_read.get(path)
        assert response.status_code == 403 and response.json["error"] == "forbidden", path
        assert anonymous.get(path).status_code == 401
    reader = ApiClient(configured_app, new_key(configured_app, "reader", permissions=["read"]))
    assert reader.get(f"/users/{backfilled}/sleep").status_code == 200
