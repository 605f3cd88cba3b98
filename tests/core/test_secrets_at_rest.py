"""Sealed model attributes: stored encrypted, bound to their row, rotated by the CLI."""

import pytest
import sqlalchemy as sa

from tests.factories import make_connection
from whoopadmin.crypto import DecryptError, UnknownKeyError, generate_key
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection

SECRETS = {
    "client_secret": "sk-live-client-secret-0001",
    "partner_client_secret": "sk-live-partner-secret-0002",
    "webhook_signing_secret": "whsec-live-signing-0003",
}


def _store(app):
    with app.app_context():
        connection = make_connection(client_secret=SECRETS["client_secret"])
        connection.partner_client_secret = SECRETS["partner_client_secret"]
        connection.webhook_signing_secret = SECRETS["webhook_signing_secret"]
        db.session.commit()
        return connection.id


def _dump(app) -> bytes:
    """Every stored value as text, and (for SQLite) the raw database file and its WAL."""
    chunks = []
    with app.app_context():
        with db.engine.connect() as conn:
            for table in db.metadata.sorted_tables:
                for row in conn.execute(sa.select(table)):
                    chunks.append(repr(tuple(row)).encode())
        db.session.remove()
        db.engine.dispose()
        url = db.engine.url
    if url.get_backend_name() == "sqlite":
        for suffix in ("", "-wal"):
            try:
                with open(url.database + suffix, "rb") as fh:
                    chunks.append(fh.read())
            except FileNotFoundError:
                pass
    return b"\n".join(chunks)


def test_secrets_round_trip(app):
    connection_id = _store(app)
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        for name, value in SECRETS.items():
            assert getattr(connection, name) == value
        assert connection.previous_client_secret is None
        assert Connection.mask(connection.client_secret) == "••••0001"


def test_no_secret_in_plain_text_in_the_database(app):
    _store(app)
    dump = _dump(app)
    assert b"client-abc" in dump  # the dump does contain the row (the scan is real)
    for value in SECRETS.values():
        assert value.encode() not in dump
        assert value[:12].encode() not in dump


def test_ciphertext_moved_to_another_row_fails(app):
    with app.app_context():
        first = make_connection(client_secret="first-secret-value")
        second = make_connection(environment="staging", hostname="s.acme.com")
        second.client_secret_sealed = first.client_secret_sealed
        db.session.commit()
        with pytest.raises(DecryptError):
            _ = second.client_secret
        # ...and to another column of the same row.
        first.webhook_signing_secret_sealed = first.client_secret_sealed
        with pytest.raises(DecryptError):
            _ = first.webhook_signing_secret


def test_rotation_re_encrypts_and_old_keys_still_open(make_app, encryption_key):
    from tests.helpers import reset_schema

    old_app = make_app()
    reset_schema(old_app)
    connection_id = _store(old_app)
    with old_app.app_context():
        before = db.session.get(Connection, connection_id).client_secret_sealed

    new_key = generate_key()
    # New key first, old key still present: everything opens before rotation.
    app = make_app(ENCRYPTION_KEYS=f"{new_key},{encryption_key}")
    with app.app_context():
        assert db.session.get(Connection, connection_id).client_secret == SECRETS["client_secret"]
    result = app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 3 secrets" in result.output
    assert "3 had used an older key" in result.output

    only_new = make_app(ENCRYPTION_KEYS=new_key)
    with only_new.app_context():
        connection = db.session.get(Connection, connection_id)
        assert connection.client_secret_sealed != before
        for name, value in SECRETS.items():
            assert getattr(connection, name) == value

    # A second rotation re-seals again, and none came from an older key.
    again = only_new.test_cli_runner().invoke(args=["keys", "rotate"])
    assert "Re-encrypted 3 secrets" in again.output and "0 had used" in again.output


def test_rotation_without_the_old_key_changes_nothing(make_app):
    from tests.helpers import reset_schema

    old_app = make_app()
    reset_schema(old_app)
    connection_id = _store(old_app)
    with old_app.app_context():
        before = db.session.get(Connection, connection_id).client_secret_sealed

    app = make_app(ENCRYPTION_KEYS=generate_key())
    result = app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code == 1
    assert (
        "Nothing was changed" in result.output
        and "not in WHOOPADMIN_ENCRYPTION_KEYS" in result.output
    )
    assert "Traceback" not in result.output
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        assert connection.client_secret_sealed == before
        with pytest.raises(UnknownKeyError):
            _ = connection.client_secret


def test_keys_generate_prints_a_usable_key(runner):
    result = runner.invoke(args=["keys", "generate"])
    assert result.exit_code == 0
    from whoopadmin.crypto import KeyRing

    ring = KeyRing.from_config(result.output.strip())
    assert ring.open(ring.seal("x", b"a"), b"a") == "x"
