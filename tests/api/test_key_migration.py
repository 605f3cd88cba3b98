"""The scoped-keys migration: a key made before it keeps working as an all-connections key
with every permission (SQLite, or PostgreSQL when configured)."""

from __future__ import annotations

import hashlib
import os

import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from tests.api.support import ApiClient
from tests.conftest import fresh_pg_database
from tests.factories import make_connection, make_link
from whoopadmin.api.models import ApiKey
from whoopadmin.audit import utcnow
from whoopadmin.extensions import db

BEFORE = "5e1f0a7c3d21"  # the head before scoped keys


def test_old_keys_become_all_connection_keys_with_every_permission(make_app, tmp_path):
    url, drop = (
        fresh_pg_database(os.environ["WHOOPADMIN_TEST_DATABASE_URL"])
        if os.environ.get("WHOOPADMIN_TEST_DATABASE_URL")
        else (f"sqlite:///{tmp_path / 'migrate.sqlite3'}", lambda: None)
    )
    try:
        app = make_app(DATABASE_URL=url)
        directory = app.extensions["migrate"].directory
        key = "wa_" + "k" * 43
        with app.app_context():
            upgrade(directory=directory, revision=BEFORE)
            with db.engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "INSERT INTO api_keys (name, prefix, key_hash, created_at) "
                        "VALUES ('old', :prefix, :hash, :now)"
                    ),
                    {
                        "prefix": key[:10],
                        "hash": hashlib.sha256(key.encode()).hexdigest(),
                        "now": utcnow(),
                    },
                )
            upgrade(directory=directory)
            row = db.session.scalar(sa.select(ApiKey))
            assert row.all_connections is True
            assert row.permissions == "connect read write"
            assert row.expires_at is None and row.connections == []
            # It acts on connections made after the migration too.
            connection = make_connection(live_at=utcnow())
            uid = make_link(connection, whoop_user_id=5, reference_id="r5").uid
            db.session.remove()
        api = ApiClient(app, key)
        assert api.get(f"/users/{uid}").status_code == 200
        assert api.post(f"/users/{uid}/backfill", json={}).status_code == 202
        body = {"connection": "production", "reference_id": "r6"}
        assert api.post("/connect-sessions", json=body).status_code == 201
        with app.app_context():
            # And back down: the key table loses only the new columns.
            downgrade(directory=directory, revision=BEFORE)
            columns = {c["name"] for c in sa.inspect(db.engine).get_columns("api_keys")}
            assert "permissions" not in columns and "all_connections" not in columns
            assert "api_key_connections" not in sa.inspect(db.engine).get_table_names()
            db.session.remove()
            db.engine.dispose()
    finally:
        drop()
