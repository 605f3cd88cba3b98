"""Which commits wait for the disk: webhook processing may skip it, token refreshes never."""

import pytest
import sqlalchemy as sa

from whoopadmin.dbutil import relaxed_durability
from whoopadmin.extensions import db


def _setting() -> str:
    return db.session.execute(sa.text("SHOW synchronous_commit")).scalar()


def test_relaxed_only_inside_and_never_for_token_refreshes(app):
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("synchronous_commit is PostgreSQL's (SQLite runs in CI too)")
        assert _setting() == "on"
        with relaxed_durability():
            assert _setting() == "off"
            db.session.commit()  # a new transaction is relaxed too
            assert _setting() == "off"
            with relaxed_durability(False):  # what sync.tokens wraps every refresh in
                assert _setting() == "on"
            assert _setting() == "off"
        assert _setting() == "on"
        db.session.commit()
        assert _setting() == "on"  # nothing leaks into the pooled connection
