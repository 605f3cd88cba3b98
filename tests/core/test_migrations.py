"""Migrations build the schema on empty SQLite and PostgreSQL, and match the models."""

import os

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade

from tests.conftest import fresh_pg_database
from whoopadmin.extensions import db


def _upgrade_and_compare(app):
    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory)
        tables = set(sa.inspect(db.engine).get_table_names())
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        db.session.remove()
        db.engine.dispose()
    return tables, diff


def test_upgrade_empty_sqlite(make_app, tmp_path):
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    tables, diff = _upgrade_and_compare(app)
    assert {"staff_users", "audit_events", "connections", "alembic_version"} <= tables
    assert diff == [], "models and migrations differ: run `whoopadmin db migrate`"


@pytest.mark.skipif(
    not os.environ.get("WHOOPADMIN_TEST_DATABASE_URL"),
    reason="PostgreSQL runs in CI: set WHOOPADMIN_TEST_DATABASE_URL",
)
def test_upgrade_empty_postgresql(make_app):
    url, drop = fresh_pg_database(os.environ["WHOOPADMIN_TEST_DATABASE_URL"])
    try:
        app = make_app(DATABASE_URL=url)
        tables, diff = _upgrade_and_compare(app)
        assert {"staff_users", "audit_events", "connections", "alembic_version"} <= tables
        assert diff == []
    finally:
        drop()


def test_db_upgrade_command(make_app, tmp_path):
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert "staff_users" in sa.inspect(db.engine).get_table_names()
        db.engine.dispose()
