"""dbutil.upsert: one statement per call on PostgreSQL, an executemany on SQLite; same rows."""

from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa

from tests.factories import make_connection, make_link
from whoopadmin.dbutil import upsert
from whoopadmin.extensions import db
from whoopadmin.sync.models import Indicator, WhoopRecord

KEYS = ["link_id", "record_type", "whoop_id", "name"]
UPDATE = ["value", "text", "unit", "start", "end"]
T0 = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)


def _indicator(link_id, name, value, **extra):
    row = {
        "link_id": link_id,
        "record_type": "sleep",
        "whoop_id": "s-1",
        "name": name,
        "value": value,
        "text": None,
        "unit": "%",
        "start": T0,
        "end": None,
    }
    return {**row, **extra}


def _stored():
    return {
        i.name: (i.value, i.text, i.unit, i.start, i.end)
        for i in db.session.scalars(sa.select(Indicator).order_by(Indicator.id))
    }


def test_upsert_inserts_overwrites_and_keeps_types(app):
    with app.app_context():
        link = make_link(make_connection())
        plus_two = timezone(timedelta(hours=2))
        upsert(
            Indicator,
            [
                _indicator(link.id, "a", 1.5),
                _indicator(link.id, "b", None, text="text", unit=None, end=T0 + timedelta(hours=8)),
                _indicator(link.id, "c", 3, start=T0.astimezone(plus_two)),  # stored as UTC
            ],
            KEYS,
            UPDATE,
        )
        db.session.commit()
        assert _stored() == {
            "a": (1.5, None, "%", T0, None),
            "b": (None, "text", None, T0, T0 + timedelta(hours=8)),
            "c": (3.0, None, "%", T0, None),
        }
        # A second call overwrites the named columns of existing keys and adds new ones;
        # two rows with one key in the same call: the last wins.
        upsert(
            Indicator,
            [
                _indicator(link.id, "a", 2.0),
                _indicator(link.id, "d", 4.0),
                _indicator(link.id, "a", 2.5),
            ],
            KEYS,
            UPDATE,
        )
        db.session.commit()
        stored = _stored()
        assert stored["a"] == (2.5, None, "%", T0, None) and stored["d"][0] == 4.0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Indicator)) == 4


def test_upsert_where_changed_leaves_unchanged_rows_alone(app):
    with app.app_context():
        link = make_link(make_connection())

        def record(updated_at, raw):
            return {
                "link_id": link.id,
                "type": "sleep",
                "whoop_id": "s-1",
                "whoop_updated_at": updated_at,
                "raw": raw,
                "fetched_at": datetime.now(UTC),
            }

        columns = ["whoop_updated_at", "raw", "fetched_at"]
        keys = ["link_id", "type", "whoop_id"]
        changed = "whoop_updated_at"
        upsert(WhoopRecord, [record("v1", {"id": "s-1", "n": [1, 2]})], keys, columns, changed)
        db.session.commit()
        first = db.session.scalar(sa.select(WhoopRecord.fetched_at))
        # The same version again: nothing is written, not even fetched_at.
        upsert(WhoopRecord, [record("v1", {"id": "s-1", "n": [1, 2]})], keys, columns, changed)
        db.session.commit()
        db.session.expire_all()
        assert db.session.scalar(sa.select(WhoopRecord.fetched_at)) == first
        # A changed one is written whole.
        upsert(WhoopRecord, [record("v2", {"id": "s-1", "n": [3]})], keys, columns, changed)
        db.session.commit()
        db.session.expire_all()
        stored = db.session.scalar(sa.select(WhoopRecord))
        assert (stored.whoop_updated_at, stored.raw) == ("v2", {"id": "s-1", "n": [3]})
        assert stored.fetched_at > first


def test_upsert_of_nothing_sends_nothing(app):
    with app.app_context():
        upsert(Indicator, [], KEYS, UPDATE)
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Indicator)) == 0
