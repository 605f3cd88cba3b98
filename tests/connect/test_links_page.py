"""Operators create connect links in the UI: URL, copy button, QR code, member cap."""

import pytest
import sqlalchemy as sa

from tests.factories import make_link
from whoopadmin.connect.models import ConnectSession
from whoopadmin.extensions import db


def _create(wizard, **fields):
    data = {"reference_id": "user-7", "expires_in": "15", **fields}
    return wizard.post("/setup/production/connect-links", data)


def test_create_link_with_qr(configured_app, wizard, connection_id):
    response = _create(wizard, success_redirect_url="https://app.acme.test/ok")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'data-testid="connect-url">https://whoop.acme.test/connect/' in page
    assert "<svg" in page and 'data-testid="qr"' in page
    token = page.split('data-testid="connect-url">https://whoop.acme.test/connect/')[1].split("<")[
        0
    ]
    with configured_app.app_context():
        session = db.session.scalar(sa.select(ConnectSession))
        assert session.reference_id == "user-7"
        assert session.created_by == "operator@example.com"
        from whoopadmin.audit import AuditEvent

        event = db.session.scalar(
            sa.select(AuditEvent).where(AuditEvent.action == "connect_session.create")
        )
        assert event.actor == "operator@example.com"
        assert event.details["reference_id"] == "user-7" and token not in str(event.details)
        assert token not in session.token_hash  # stored hashed
    # The link works on the connection's host.
    opened = configured_app.test_client().get(
        f"/connect/{token}", base_url="https://whoop.acme.test"
    )
    assert opened.status_code == 200
    # Shown once: the list of recent links has no URL.
    again = wizard.client.get("/setup/production/connect-links").get_data(as_text=True)
    assert token not in again and "user-7" in again


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"reference_id": ""}, b"This field is required"),
        ({"success_redirect_url": "https://evil.example/x"}, b"allowed origins"),
        ({"failure_redirect_url": "javascript:alert(1)"}, b"app scheme"),
        ({"language": "not a tag"}, b"language tag"),
        ({"language": "fr"}, b"has no translation; use one of: en, de"),
        ({"language": "d\u00e9"}, b"language tag"),
        ({"language": "de-" + "x" * 40}, b"Field cannot be longer than 16 characters"),
        ({"expires_in": "0"}, b"Number must be between"),
        ({"expires_in": "soon"}, b"Not a valid integer"),
    ],
)
def test_create_link_bad_input(configured_app, wizard, connection_id, fields, message):
    response = _create(wizard, **fields)
    assert response.status_code == 400
    assert message in response.data
    with configured_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(ConnectSession.id))) == 0


def test_language_choice_offers_the_translations(configured_app, wizard, connection_id):
    page = wizard.client.get("/setup/production/connect-links").get_data(as_text=True)
    assert '<option value="de">German (Deutsch)</option>' in page
    assert "Chosen by the member&#39;s browser" in page
    assert _create(wizard, language="de").status_code == 200
    with configured_app.app_context():
        assert db.session.scalar(sa.select(ConnectSession.language)) == "de"


def test_link_refused_before_setup(wizard):
    wizard.create()
    response = wizard.post(
        "/setup/production/connect-links", {"reference_id": "u", "expires_in": "5"}
    )
    assert response.status_code == 400
    assert b"not set up yet" in response.data


def test_member_cap_warning(configured_app, wizard, connection_id):
    with configured_app.app_context():
        for n in range(8):
            make_link(whoop_user_id=500 + n)
    page = wizard.client.get("/setup/production/connect-links").get_data(as_text=True)
    assert 'data-testid="member-warning"' in page and "8 of 10" in page
    with configured_app.app_context():
        make_link(whoop_user_id=600)
        make_link(whoop_user_id=601)
    page = wizard.client.get("/setup/production/connect-links").get_data(as_text=True)
    assert "WHOOP refuses more" in page


def test_approved_app_has_no_cap_warning(configured_app, wizard, connection_id):
    from whoopadmin.setup.models import Connection

    with configured_app.app_context():
        db.session.scalar(sa.select(Connection)).approved_by_whoop = True
        db.session.commit()
        for n in range(10):
            make_link(whoop_user_id=700 + n)
    page = wizard.client.get("/setup/production/connect-links").get_data(as_text=True)
    assert 'data-testid="member-warning"' not in page


def test_support_cannot_create_links(configured_app, client, auth):
    from tests.factories import make_user
    from tests.helpers import csrf_from

    with configured_app.app_context():
        make_user("support")
    auth.logout()
    auth.login("support@example.com", "support-password")
    assert client.get("/setup/production/connect-links").status_code == 403
    token = csrf_from(client.get("/").get_data(as_text=True))
    response = client.post(
        "/setup/production/connect-links", data={"reference_id": "x", "csrf_token": token}
    )
    assert response.status_code == 403
