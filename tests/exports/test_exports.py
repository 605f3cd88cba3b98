"""Exports of one user's data: a year in CSV, NDJSON and FHIR R4 (every resource validated
with fhir.resources), bounded memory, bad input, the link page's button and the audit row."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
import zipfile

import pytest
import sqlalchemy as sa
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation

from tests.api.conftest import new_key
from tests.api.support import ApiClient
from tests.erasure.test_erasure import synced_member
from tests.factories import make_connection, make_link
from tests.helpers import csrf_from
from whoopadmin.api.openapi import document
from whoopadmin.audit import AuditEvent
from whoopadmin.connect.models import Link
from whoopadmin.erasure import service as erasure_service
from whoopadmin.exports import service
from whoopadmin.extensions import db
from whoopadmin.sync.models import Indicator, WhoopRecord
from whoopadmin.whoop import normalise as norm

STORED = {v: k for k, v in service.TYPES.items()}


@pytest.fixture
def api(configured_app):
    return ApiClient(configured_app, new_key(configured_app))


def _stored_counts(app, link_id: int) -> dict[str, int]:
    """Records per export type, and indicators, as the database holds them."""
    with app.app_context():
        rows = db.session.execute(
            sa.select(WhoopRecord.type, sa.func.count())
            .where(WhoopRecord.link_id == link_id, WhoopRecord.deleted.is_(False))
            .group_by(WhoopRecord.type)
        ).all()
        counts = {STORED[t]: n for t, n in rows if t in STORED}
        counts["indicators"] = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Indicator)
            .where(Indicator.link_id == link_id, Indicator.record_type != "profile")
        )
    return counts


def _download(api: ApiClient, uid: str, fmt: str):
    response = api.get(f"/users/{uid}/export?format={fmt}", validate=False)
    assert response.status_code == 200, response.data[:300]
    assert response.is_streamed
    assert response.mimetype == service.MEDIA_TYPES[fmt]
    # The content type is one the OpenAPI document lists for this operation.
    operation = document()["paths"]["/users/{user_id}/export"]["get"]
    assert response.mimetype in operation["responses"]["200"]["content"]
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    return response


def test_the_csv_columns_cover_every_indicator():
    columns = [name for names in service.COLUMNS.values() for name in names]
    assert len(columns) == len(set(columns))
    assert set(columns) == set(norm.INDICATORS)


def test_a_year_exports_in_three_formats_every_fhir_resource_valid(configured_app, sandbox, api):
    app = configured_app
    user = synced_member(app, sandbox, "export-year-1", days=365)
    counts = _stored_counts(app, user["id"])
    assert counts["sleep"] >= 365 and counts["cycle"] >= 365 and counts["workout"] > 0
    assert counts["body"] == 1

    # FHIR: the Bundle parses, and so does every Observation, one by one.
    body = _download(api, user["uid"], "fhir").get_data()
    document = json.loads(body)
    assert document["resourceType"] == "Bundle" and document["type"] == "collection"
    bundle = Bundle.model_validate_json(body)
    assert len(bundle.entry) == counts["indicators"] == len(document["entry"])
    seen_codes, ids = {}, set()
    for entry in document["entry"]:
        observation = Observation.model_validate(entry["resource"])
        assert entry["fullUrl"] == f"urn:uuid:{observation.id}"
        ids.add(observation.id)
        assert observation.status == "final"
        assert observation.subject.identifier.value == user["uid"]
        assert observation.meta.tag[0].code == "whoop"
        codings = {(c.system, c.code) for c in observation.code.coding}
        local = [c.code for c in observation.code.coding if c.system == service.LOCAL_CODES]
        assert len(local) == 1 and local[0] in norm.INDICATORS
        seen_codes[local[0]] = (codings, observation)
        if observation.valueQuantity is not None and norm.INDICATORS[local[0]] not in (
            None,
            "bool",
        ):
            assert observation.valueQuantity.system == service.UCUM
        assert (
            observation.effectivePeriod
            or observation.effectiveDateTime
            or local[0]
            in (
                "height",
                "weight",
                "max_heart_rate",
            )
        )
    assert len(ids) == len(document["entry"])  # one id per resource
    expected = {
        "resting_heart_rate": ("40443-4", "/min"),
        "respiratory_rate": ("9279-1", "/min"),
        "spo2": ("2708-6", "%"),
        "weight": ("29463-7", "kg"),
        "height": ("8302-2", "m"),
        "sleep_duration": ("93832-4", "min"),
        "sleep_deep_time": ("93831-6", "min"),
        "sleep_light_time": ("93830-8", "min"),
        "sleep_rem_time": ("93829-0", "min"),
        "hrv_rmssd": (None, "ms"),
        "skin_temperature": (None, "Cel"),
    }
    for name, (loinc, unit) in expected.items():
        codings, observation = seen_codes[name]
        loincs = {code for system, code in codings if system == service.LOINC}
        assert (loinc in loincs) if loinc else not loincs, name
        assert observation.valueQuantity.code == unit, name
    assert ("http://loinc.org", "59408-5") in seen_codes["spo2"][0]

    # NDJSON: one parsable line per record, ids and indicators as the deliveries have them.
    lines = _download(api, user["uid"], "ndjson").get_data().splitlines()
    assert len(lines) == sum(counts[t] for t in service.TYPES)
    per_type: dict[str, int] = {}
    for line in lines:
        item = json.loads(line)
        assert item["provider"] == "whoop" and item["user_id"] == user["uid"]
        per_type[item["type"]] = per_type.get(item["type"], 0) + 1
        assert item["id"] in user["whoop_ids"] or item["type"] == "body"
        assert isinstance(item["raw"], dict)
        for indicator in item["indicators"]:
            assert norm.INDICATORS[indicator["name"]] == indicator["unit"]
        if item["type"] == "sleep":
            assert item["start"] == item["raw"]["start"] and item["end"] == item["raw"]["end"]
    assert per_type == {t: counts[t] for t in service.TYPES}

    # CSV: a zip of one file per type, the documented columns, one row per record.
    archive = zipfile.ZipFile(io.BytesIO(_download(api, user["uid"], "csv").get_data()))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == sorted(f"{t}.csv" for t in service.TYPES)
    for export_type in service.TYPES:
        rows = list(csv.reader(io.StringIO(archive.read(f"{export_type}.csv").decode())))
        assert rows[0] == service.IDENTITY_COLUMNS + service.COLUMNS[export_type]
        assert len(rows) - 1 == counts[export_type], export_type
        assert all(len(row) == len(rows[0]) and row[0] == "whoop" for row in rows[1:])
    sleeps = list(csv.DictReader(io.StringIO(archive.read("sleep.csv").decode())))
    assert all(float(row["sleep_duration"]) > 0 for row in sleeps)
    assert any(row["respiratory_rate"] for row in sleeps)

    # Each download is in the audit log: who, which user, which format.
    with app.app_context():
        rows = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "link.export").order_by(AuditEvent.id)
        ).all()
        assert [row.details["format"] for row in rows] == ["fhir", "ndjson", "csv"]
        assert all(row.actor.startswith("api-key:") for row in rows)
        assert all(row.details["user_id"] == user["uid"] for row in rows)
        assert all(row.target_id == str(user["id"]) for row in rows)


def _drain(chunks) -> int:
    return sum(len(chunk) for chunk in chunks)


def test_exports_read_in_bounded_batches_and_memory_does_not_grow_with_the_data(
    configured_app, sandbox
):
    app = configured_app
    year = synced_member(app, sandbox, "export-year-2", days=365)
    month = synced_member(app, sandbox, "export-month-2", days=30)
    size = 40
    with app.app_context():
        big = service.Subject.of(db.session.get(Link, year["id"]))
        small = service.Subject.of(db.session.get(Link, month["id"]))
        # Every query fetches at most one batch; a year needs many of them.
        statements: list[str] = []

        def count(conn, cursor, statement, *args):
            if "FROM whoop_records" in statement:
                statements.append(statement)

        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            batches = [len(b) for t in service.TYPES for b in service.batches(big, t, size)]
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
        assert max(batches) == size and sum(batches) > 20 * size
        assert len(statements) >= len(batches)
        assert all("LIMIT" in s.upper() for s in statements)

        def peak(subject, fmt) -> int:
            db.session.expunge_all()
            tracemalloc.start()
            try:
                _drain(service.export(subject, fmt, size))
                return tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

        for fmt in service.FORMATS:
            peak(small, fmt)  # warm up: imports, caches, compiled queries
            small_peak, big_peak = peak(small, fmt), peak(big, fmt)
            # A year is 12 times the month's data; memory must not follow it.
            assert big_peak < 2 * small_peak + 256 * 1024, (fmt, small_peak, big_peak)
            assert _drain(service.export(big, fmt, size)) > 4 * _drain(
                service.export(small, fmt, size)
            )


def test_bad_exports_are_refused_clearly(configured_app, api):
    app = configured_app
    with app.app_context():
        other = make_connection(environment="staging", hostname="whoop-staging.acme.com")
        mine = make_link(whoop_user_id=501, reference_id="export-mine")
        theirs = make_link(connection=other, whoop_user_id=502, reference_id="export-theirs")
        mine_uid, theirs_uid, mine_connection = mine.uid, theirs.uid, mine.connection_id
        mine_id, theirs_id = mine.id, theirs.id
    for query in ("format=xml", "format=", "", "format=CSV", "format=csv&format=zip"):
        first_counts = "format=csv&" in query  # the first value counts
        response = api.get(
            f"/users/{mine_uid}/export?{query}".rstrip("?"), validate=not first_counts
        )
        if first_counts:
            assert response.status_code == 200
            continue
        assert response.status_code == 400, query
        assert response.json["error"] == "invalid_request" and response.json["field"] == "format"
    # Another connection's user is no user at all for a key scoped to mine.
    scoped = ApiClient(app, new_key(app, "scoped", connection_ids=[mine_connection]))
    missing = scoped.get(f"/users/{theirs_uid}/export?format=ndjson")
    unknown = scoped.get(f"/users/{'0' * 32}/export?format=ndjson")
    assert missing.status_code == unknown.status_code == 404
    assert missing.data == unknown.data
    assert scoped.get(f"/users/{mine_uid}/export?format=ndjson", validate=False).status_code == 200
    # No read permission: 403 before anything else.
    writer = ApiClient(app, new_key(app, "writer", permissions=["write", "connect"]))
    refused = writer.get(f"/users/{mine_uid}/export?format=fhir")
    assert refused.status_code == 403 and refused.json["error"] == "forbidden"
    assert ApiClient(app, None).get(f"/users/{mine_uid}/export?format=fhir").status_code == 401
    # Scheduled for erasure: 409; erased: 410. No export is logged for either.
    with app.app_context():
        link = db.session.get(Link, theirs_id)
        erasure_service.request_erasure("test", link, grace=3)
    pending = api.get(f"/users/{theirs_uid}/export?format=csv")
    assert pending.status_code == 409 and pending.json["error"] == "erasure_pending"
    with app.app_context():
        erasure_service.request_erasure("test", db.session.get(Link, mine_id), grace=0)
    gone = api.get(f"/users/{mine_uid}/export?format=csv")
    assert gone.status_code == 410 and gone.json["error"] == "user_erased"
    with app.app_context():
        logged = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "link.export")
        ).all()
        assert len(logged) == 2  # the two that were served
        # The erasure redacted who they were about: the audit log names no erased user.
        assert [row.details["user_id"] for row in logged] == ["[erased]", "[erased]"]
        assert [row.details["format"] for row in logged] == ["csv", "ndjson"]


def test_the_link_page_exports_for_support_staff_and_operators(
    configured_app, operator_client, support_client
):
    app = configured_app
    with app.app_context():
        uid = make_link(whoop_user_id=601, reference_id="export-page").uid
        link_id = db.session.scalar(sa.select(Link.id).where(Link.uid == uid))
        db.session.add(
            WhoopRecord(
                link_id=link_id,
                type="body_measurement",
                whoop_id="601",
                raw={"height_meter": 1.8, "weight_kilogram": 80.5, "max_heart_rate": 190},
            )
        )
        db.session.commit()
    for client, email, fmt in (
        (support_client, "support@example.com", "ndjson"),
        (operator_client, "operator@example.com", "fhir"),
    ):
        page = client.get(f"/links/{uid}")
        assert page.status_code == 200 and b'data-testid="export"' in page.data
        token = csrf_from(page.get_data(as_text=True))
        response = client.post(f"/links/{uid}/export", data={"csrf_token": token, "format": fmt})
        assert response.status_code == 200 and response.mimetype == service.MEDIA_TYPES[fmt]
        body = response.get_data()
        if fmt == "fhir":
            bundle = Bundle.model_validate_json(body)
            weights = [
                e.resource for e in bundle.entry if e.resource.code.coding[0].code == "29463-7"
            ]
            assert weights[0].valueQuantity.value == 80.5
        else:
            assert json.loads(body)["type"] == "body"
        with app.app_context():
            row = db.session.scalars(
                sa.select(AuditEvent)
                .where(AuditEvent.action == "link.export")
                .order_by(AuditEvent.id.desc())
            ).first()
            assert (row.actor, row.details["format"], row.target_id) == (email, fmt, str(link_id))
        # A bad format or no CSRF token: refused, nothing logged.
        bad = client.post(
            f"/links/{uid}/export",
            data={"csrf_token": token, "format": "xls"},
            follow_redirects=True,
        )
        assert bad.status_code == 200 and b"Not exported. format must be one of" in bad.data
        assert client.post(f"/links/{uid}/export", data={"format": "csv"}).status_code == 400
        assert (
            client.post(
                "/links/nope/export", data={"csrf_token": token, "format": "csv"}
            ).status_code
            == 404
        )
    with app.app_context():
        assert (
            db.session.scalar(sa.select(sa.func.count()).where(AuditEvent.action == "link.export"))
            == 2
        )
    anonymous = app.test_client().post(f"/links/{uid}/export", data={"format": "csv"})
    assert anonymous.status_code in (302, 400)
    # While an erasure is scheduled the page offers no export, and a POST is refused.
    with app.app_context():
        erasure_service.request_erasure("test", db.session.get(Link, link_id), grace=3)
    page = operator_client.get(f"/links/{uid}")
    assert b'data-testid="export"' not in page.data
    token = csrf_from(page.get_data(as_text=True))
    refused = operator_client.post(
        f"/links/{uid}/export", data={"csrf_token": token, "format": "csv"}, follow_redirects=True
    )
    assert b"Not exported. This user&#39;s erasure is scheduled" in refused.data


def test_csv_cells_are_not_formulas_and_empty_types_have_headers(app):
    with app.app_context():
        make_connection()
        link = make_link(whoop_user_id=701, reference_id="export-formula")
        db.session.add(
            WhoopRecord(
                link_id=link.id,
                type="workout",
                whoop_id="w-1",
                raw={
                    "id": "w-1",
                    "start": "2026-03-01T10:00:00Z",
                    "end": "2026-03-01T11:00:00Z",
                    "sport_name": '=HYPERLINK("https://evil.test")',
                    "score_state": "PENDING_SCORE",
                },
            )
        )
        db.session.add(
            WhoopRecord(link_id=link.id, type="workout", whoop_id="w-2", deleted=True, raw={})
        )
        db.session.commit()
        data = b"".join(service.export(service.Subject.of(link), "csv"))
    archive = zipfile.ZipFile(io.BytesIO(data))
    workouts = list(csv.DictReader(io.StringIO(archive.read("workout.csv").decode())))
    assert len(workouts) == 1  # the deleted one is left out
    assert workouts[0]["workout_sport"] == '\'=HYPERLINK("https://evil.test")'
    assert workouts[0]["workout_duration"] == "60.0" and workouts[0]["workout_strain"] == ""
    for export_type in ("sleep", "recovery", "cycle", "body"):
        lines = archive.read(f"{export_type}.csv").decode().splitlines()
        assert lines == [",".join(service.IDENTITY_COLUMNS + service.COLUMNS[export_type])]
