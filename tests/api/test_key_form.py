"""The new-key form: connections (all or ticked), permissions, expiry; bad input is a clear
400 that creates nothing; the list shows scope, expiry and last use."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
import sqlalchemy as sa

from tests.api.support import ApiClient, count
from tests.api.test_api_keys import ALL, create, only_key, shown_key
from tests.factories import make_connection, make_link
from tests.helpers import csrf_from
from whoopadmin.api.models import ApiKey
from whoopadmin.audit import AuditEvent, utcnow
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection


@pytest.fixture
def connections(app):
    with app.app_context():
        ids = {}
        for env in ("production", "staging", "development"):
            ids[env] = make_connection(
                environment=env, hostname=f"{env}.acme.test", live_at=utcnow()
            ).id
        return ids


def test_the_form_uses_checkboxes(operator_client, connections):
    page = operator_client.get("/api-keys").get_data(as_text=True)
    assert "<select" not in page and "Hold Ctrl" not in page
    for value in connections.values():
        assert re.search(rf'type="checkbox"[^>]*value="{value}"', page)
    for permission in ("connect", "read", "write"):
        assert re.search(
            rf'checked[^>]*type="checkbox"[^>]*value="{permission}"|'
            rf'type="checkbox"[^>]*value="{permission}"[^>]*checked',
            page,
        )
    assert re.search(r'type="radio"[^>]*value="all"', page)
    assert 'type="date"' in page


def test_create_a_scoped_key(app, operator_client, connections):
    day = (utcnow() + timedelta(days=30)).date()
    response = create(
        operator_client,
        "staging-reader",
        scope="selected",
        connections=[str(connections["staging"]), str(connections["development"])],
        permissions=["read"],
        expires_on=day.isoformat(),
    )
    assert response.status_code == 200, response.data
    key = shown_key(response)
    with app.app_context():
        row = db.session.get(ApiKey, only_key(app).id)
        assert not row.all_connections
        assert row.connection_ids == {connections["staging"], connections["development"]}
        assert row.permissions == "read"
        # Valid through the end of that day (UTC).
        assert row.expires_at == datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
            days=1
        )
        event = db.session.scalar(
            sa.select(AuditEvent).where(AuditEvent.action == "api_key.create")
        )
        assert event.details["connections"] == ["staging", "development"]
        assert event.details["permissions"] == ["read"]
        assert event.details["expires_at"] == row.expires_at.isoformat()
        row_id, expires_at = row.id, row.expires_at
        staging = make_link(db.session.get(Connection, connections["staging"]), whoop_user_id=5).uid
        production = make_link(
            db.session.get(Connection, connections["production"]), whoop_user_id=6
        ).uid

    listed = unescape(operator_client.get("/api-keys").get_data(as_text=True))
    line = re.search(rf'data-testid="key-{row_id}">(.*?)</tr>', listed, re.S).group(1)
    assert "staging, development" in line and ">read<" in line
    assert expires_at.strftime("%Y-%m-%d %H:%M UTC") in line and "never" in line

    api = ApiClient(app, key)
    assert api.get(f"/users/{staging}").status_code == 200
    assert api.get(f"/users/{production}").status_code == 404
    assert api.delete(f"/users/{staging}").status_code == 403
    # The last-used time is on the page once the key was used.
    listed = operator_client.get("/api-keys").get_data(as_text=True)
    line = re.search(rf'data-testid="key-{row_id}">(.*?)</tr>', listed, re.S).group(1)
    assert "never" not in line


def test_all_connections_default(app, operator_client, connections):
    key = shown_key(create(operator_client, "everything"))
    with app.app_context():
        row = db.session.scalar(sa.select(ApiKey))
        assert row.all_connections and row.connections == []
        assert row.permissions == "connect read write" and row.expires_at is None
        later = make_connection(environment="later", hostname="later.acme.test")
        uid = make_link(later, whoop_user_id=9).uid
    assert ApiClient(app, key).get(f"/users/{uid}").status_code == 200


BAD = [
    ({"scope": "selected"}, "connections", "Choose at least one connection, or all connections."),
    (
        {"scope": "all", "connections": ["{staging}"]},
        "connections",
        "You chose all connections and also ticked some: choose one or the other.",
    ),
    ({"scope": "some"}, "scope", "Choose all connections or only some."),
    ({"scope": ""}, "scope", "Choose all connections or only some."),
    ({"scope": "selected", "connections": ["abc"]}, "connections", "Choose connections from"),
    ({"scope": "selected", "connections": ["99999"]}, "connections", "Choose connections from"),
    ({"scope": "selected", "connections": ["-1"]}, "connections", "Choose connections from"),
    ({"permissions": []}, "permissions", "Choose at least one permission."),
    ({"permissions": ["admin"]}, "permissions", "Choose permissions from the list."),
    ({"permissions": ["read", "READ"]}, "permissions", "Choose permissions from the list."),
    ({"expires_on": "tomorrow"}, "expires_on", "Give the expiry as a date (YYYY-MM-DD)"),
    ({"expires_on": "2026-02-30"}, "expires_on", "Give the expiry as a date (YYYY-MM-DD)"),
    ({"expires_on": "2020-01-01"}, "expires_on", "The expiry date is in the past."),
    ({"expires_on": "0001-01-01"}, "expires_on", "The expiry date is in the past."),
    ({"expires_on": "9999-12-31"}, "expires_on", "The expiry can be at most five years away."),
    ({"expires_on": "\x00"}, None, None),
    ({"name": ""}, "name", "Give the key a name of 1-100 printable characters."),
]


@pytest.mark.parametrize(("fields", "field", "message"), BAD, ids=[str(b[0]) for b in BAD])
def test_bad_input_is_a_clear_400(app, operator_client, connections, fields, field, message):
    fields = {
        k: [x.format(**connections) for x in v] if isinstance(v, list) else v
        for k, v in fields.items()
    }
    response = create(operator_client, fields.pop("name", "my key"), **fields)
    assert response.status_code == 400
    page = unescape(response.get_data(as_text=True))
    assert 'data-testid="new-key"' not in page
    if field is None:  # a NUL is refused before the view, by the app-wide guard on form input
        assert "NUL character" in page
    else:
        errors = re.findall(rf'data-testid="error-{field}">([^<]*)<', page)
        assert errors and errors[0].startswith(message), (errors, page[-3000:])
        assert "The key was not created" in page
    with app.app_context():
        assert count(ApiKey) == 0
        assert "api_key.create" not in db.session.scalars(sa.select(AuditEvent.action)).all()


def test_what_was_typed_is_kept_after_an_error(operator_client, connections):
    response = create(
        operator_client,
        "kept name",
        scope="selected",
        connections=[str(connections["staging"])],
        permissions=["write"],
        expires_on="2020-01-01",
    )
    page = response.get_data(as_text=True)
    assert 'value="kept name"' in page and 'value="2020-01-01"' in page
    assert re.search(rf'checked[^>]*value="{connections["staging"]}"', page)
    assert re.search(r'checked[^>]*value="selected"', page)
    assert not re.search(r'checked[^>]*value="read"', page)


def test_a_connection_deleted_while_the_form_was_open(app, operator_client, connections):
    token = csrf_from(operator_client.get("/api-keys").get_data(as_text=True))
    with app.app_context():
        db.session.execute(sa.text("DELETE FROM connections WHERE environment = 'development'"))
        db.session.commit()
    response = operator_client.post(
        "/api-keys",
        data={
            **ALL,
            "name": "late",
            "scope": "selected",
            "connections": [str(connections["development"])],
            "csrf_token": token,
        },
    )
    assert response.status_code == 400
    with app.app_context():
        assert count(ApiKey) == 0
