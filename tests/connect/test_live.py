"""Connect sessions, connect pages and the callback only for connections that are live."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from tests.connect.support import links
from tests.helpers import PUBLIC, csrf_from, query
from whoopadmin.connect import service
from whoopadmin.connect.models import ConnectSession, OAuthState
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count(model.id)))


def _set_live(app, live: bool) -> None:
    """Take the connection off the air (as a new subdomain does) or put it back."""
    with app.app_context():
        connection = db.session.scalar(sa.select(Connection))
        connection.live_at = service.utcnow() if live else None
        db.session.commit()


@pytest.fixture
def pending(wizard):
    """A staging connection with credentials and a subdomain, still waiting for DNS."""
    whoop_app = wizard.whoop_app("staging", "whoop-staging.acme.test")
    wizard.create("staging", "Acme staging")
    wizard.credentials("staging", whoop_app.client_id, whoop_app.client_secret)
    wizard.verify("staging")
    wizard.subdomain("staging", "whoop-staging.acme.test")
    return wizard.connection("staging")


def test_create_session_refuses_a_connection_that_is_not_live(configured_app, pending):
    with configured_app.app_context():
        connection = db.session.get(Connection, pending.id)
        with pytest.raises(service.ConnectError) as info:
            service.create_session(connection, reference_id="u", created_by="test")
    assert info.value.code == "connection_not_live" and info.value.field == "connection"
    assert _count(configured_app, ConnectSession) == 0


def test_connect_links_page_says_why_and_links_the_missing_step(configured_app, wizard, pending):
    page = wizard.client.get("/setup/staging/connect-links").get_data(as_text=True)
    notice = re.search(r'data-testid="not-live">(.*?)</div>', page, re.S).group(1)
    assert "not live yet" in notice
    assert 'href="/setup/staging/dns"' in notice and "DNS records" in notice
    response = wizard.post(
        "/setup/staging/connect-links", {"reference_id": "user-1", "expires_in": "15"}
    )
    assert response.status_code == 409
    assert 'data-testid="not-live"' in response.get_data(as_text=True)
    assert 'data-testid="created-link"' not in response.get_data(as_text=True)
    assert _count(configured_app, ConnectSession) == 0
    # The live connection's page has no such notice.
    live = wizard.client.get("/setup/production/connect-links").get_data(as_text=True)
    assert 'data-testid="not-live"' not in live


def test_connect_page_and_start_of_a_connection_no_longer_live(
    configured_app, end_user, new_session
):
    token = new_session()
    page = end_user.open(token)
    assert page.status_code == 200
    csrf = csrf_from(page.get_data(as_text=True))
    _set_live(configured_app, False)

    again = end_user.open(token)
    assert again.status_code == 409
    assert b'data-reason="connection_not_live"' in again.data
    assert b"not available here yet" in again.data
    start = end_user.client.post(
        f"/connect/{token}/start",
        data={"csrf_token": csrf},
        base_url=PUBLIC,
        headers={"Referer": f"{PUBLIC}/connect/{token}"},
    )
    assert start.status_code == 409 and "Location" not in start.headers  # no trip to WHOOP
    assert b'data-reason="connection_not_live"' in start.data
    assert _count(configured_app, OAuthState) == 0


def test_callback_of_a_connection_taken_off_the_air(configured_app, end_user, new_session):
    location = end_user.consent(end_user.start(new_session()))
    _set_live(configured_app, False)
    assert query(end_user.callback(location).headers["Location"])["reason"] == (
        "connection_not_live"
    )
    assert links(configured_app) == []
    _set_live(configured_app, True)  # nothing was claimed: the same browser can finish
    assert (
        end_user.callback(location)
        .headers["Location"]
        .startswith("https://app.acme.test/whoop/done?")
    )


def test_support_reconnect_link_says_why(configured_app, linked, support_client):
    uid = links(configured_app)[0].uid
    _set_live(configured_app, False)
    client = support_client
    page = f"/links/{uid}"
    token = csrf_from(client.get(page).get_data(as_text=True))
    response = client.post(f"{page}/reconnect", data={"csrf_token": token})
    assert response.headers["Location"] == page
    shown = client.get(page).get_data(as_text=True)
    assert "not live yet" in shown
    assert 'href="/setup/production/go-live"' in shown and ">Go live</a>" in shown
    assert _count(configured_app, ConnectSession) == 1  # only the session of the first connect
