"""``POST /api/v1/users/<id>/backfill``: an on-demand re-sync over a window."""

import pytest
import sqlalchemy as sa

from tests.conftest import run_jobs
from whoopadmin.connect.models import Link
from whoopadmin.extensions import db
from whoopadmin.sync.models import SyncRun, WhoopRecord


def _uid(app, link_id):
    with app.app_context():
        return db.session.get(Link, link_id).uid


def test_backfill_window(configured_app, linked, api):
    uid = _uid(configured_app, linked)
    response = api.open(
        "POST",
        f"/users/{uid}/backfill",
        json={"start": "2026-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"},
    )
    assert response.status_code == 422  # more than a year at once
    assert response.json["error"] == "invalid_window"
    response = api.open("POST", f"/users/{uid}/backfill", json={})
    assert response.status_code == 202, response.json
    assert response.json["status"] == "queued" and response.json["user_id"] == uid
    run_jobs(configured_app, ("backfill",))
    with configured_app.app_context():
        reasons = set(db.session.scalars(sa.select(SyncRun.reason)))
        assert "resync" in reasons
        assert db.session.scalar(sa.select(sa.func.count(WhoopRecord.id))) > 0


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        # Not what the document allows: 400.
        ({"start": "yesterday"}, "start", 400),
        ({"start": "2026-01-01T00:00:00"}, "start", 400),
        ({"start": "2026-01-01"}, "start", 400),
        ({"start": "2026-01-01 00:00:00Z"}, "start", 400),
        ({"start": "2026-01-01T00:00Z"}, "start", 400),
        ({"start": "2026-02-30T00:00:00Z"}, "start", 400),
        ({"start": "2026-01-01T24:00:00Z"}, "start", 400),
        ({"start": "2026-01-01T00:00:00+24:00"}, "start", 400),
        ({"start": "2026-01-01T00:00:00." + "1" * 30 + "Z"}, "start", 400),
        ({"end": 5}, "end", 400),
        ({"days": 3}, "days", 400),
        # RFC 3339 date-times, but not a window the API works with: 422.
        ({"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "start", 422),
        # At the ends of what datetime holds, converting to UTC or going back 30 days
        # overflows.
        ({"start": "0001-01-01T00:00:00+05:00"}, "start", 422),
        ({"start": "0000-01-01T00:00:00Z"}, "start", 422),
        ({"end": "9999-12-31T23:59:59-05:00"}, "end", 422),
        ({"end": "0001-01-02T00:00:00Z"}, "end", 422),
        ({"end": "9998-12-31T23:00:00-05:00"}, "end", 422),
    ],
)
def test_bad_bodies(configured_app, linked, api, body, field, status):
    response = api.open("POST", f"/users/{_uid(configured_app, linked)}/backfill", json=body)
    assert response.status_code == status, response.json
    assert response.json["field"] == field


@pytest.mark.parametrize(
    "start",
    [
        "2026-01-01t00:00:00z",
        "2026-01-01T00:00:00.123456789Z",
        "2026-01-01T05:30:00+05:30",
        "2026-06-30T23:59:60Z",
    ],
)
def test_rfc3339_date_times_are_accepted(configured_app, linked, api, start):
    body = {"start": start, "end": "2026-07-01T00:00:00Z"}
    response = api.open("POST", f"/users/{_uid(configured_app, linked)}/backfill", json=body)
    assert response.status_code == 202, response.json


def test_deeply_nested_body(configured_app, linked, api):
    uid = _uid(configured_app, linked)
    body = "[" * 5000 + "]" * 5000  # json.loads raises RecursionError, not ValueError
    response = api.open(
        "POST", f"/users/{uid}/backfill", data=body, content_type="application/json"
    )
    assert response.status_code == 400 and response.json["error"] == "invalid_json"


def test_unknown_and_inactive_users(configured_app, linked, api):
    assert api.open("POST", "/users/nope/backfill", json={}).status_code == 404
    with configured_app.app_context():
        db.session.get(Link, linked).status = "revoked"
        db.session.commit()
    response = api.open("POST", f"/users/{_uid(configured_app, linked)}/backfill", json={})
    assert response.status_code == 409 and response.json["error"] == "link_inactive"
