"""The link-integrity migration on a database that already has a connection: PKCE is
switched on for it, the reference-id policy starts at "refuse", and it downgrades."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from tests.conftest import fresh_pg_database
from whoopadmin.extensions import db

BEFORE = "b72c567402b1"
INSERT = sa.text(
    "INSERT INTO connections (environment, display_name, status, allowed_origins, app_schemes,"
    " rate_limit_per_minute, rate_limit_per_day, approved_by_whoop, use_pkce, dns_attempts,"
    " created_at, uid) VALUES ('production', 'Acme', 'active', '[]', '[]', 100, 10000, :f,"
    " :f, 0, CURRENT_TIMESTAMP, 'c0ffee')"
)


def _run(app) -> None:
    directory = app.extensions["migrate"].directory
    with app.app_context():
        upgrade(directory=directory, revision=BEFORE)
        with db.engine.begin() as conn:
            conn.execute(INSERT, {"f": False})
        upgrade(directory=directory)
        with db.engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT use_pkce, reference_id_policy FROM connections")
            ).one()
            assert (bool(row.use_pkce), row.reference_id_policy) == (True, "refuse")
            columns = {c["name"] for c in sa.inspect(conn).get_columns("oauth_states")}
            assert "binding_hash" in columns
        downgrade(directory=directory, revision=BEFORE)
        with db.engine.connect() as conn:
            names = {c["name"] for c in sa.inspect(conn).get_columns("connections")}
            assert "reference_id_policy" not in names and "use_pkce" in names
        db.session.remove()
        db.engine.dispose()


def test_existing_connections_get_pkce_sqlite(make_app, tmp_path):
    _run(make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'existing.sqlite3'}"))


@pytest.mark.skipif(
    not os.environ.get("WHOOPADMIN_TEST_DATABASE_URL"),
    reason="PostgreSQL runs in CI: set WHOOPADMIN_TEST_DATABASE_URL",
)
def test_existing_connections_get_pkce_postgresql(make_app):
    url, drop = fresh_pg_database(os.environ["WHOOPADMIN_TEST_DATABASE_URL"])
    try:
        _run(make_app(DATABASE_URL=url))
    finally:
        drop()
