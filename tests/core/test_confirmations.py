"""Destructive actions ask first, without JavaScript: the button is a link to a page that
says what will happen, whose form (CSRF + ``confirm=yes``) does it; the old one-click POST
does nothing."""

from __future__ import annotations

import re
from html import unescape

import pytest
import sqlalchemy as sa

from tests.api.conftest import new_key
from tests.destinations.support import destination, seed
from tests.factories import make_connection, make_link
from tests.helpers import csrf_from
from whoopadmin.api.models import ApiKey
from whoopadmin.audit import AuditEvent
from whoopadmin.connect.models import Link
from whoopadmin.destinations.models import Destination
from whoopadmin.extensions import db


def link_state(app):
    with app.app_context():
        link = db.session.scalar(sa.select(Link))
        return link.status, link.access_token


def key_state(app):
    with app.app_context():
        return db.session.scalar(sa.select(ApiKey.revoked_at))


def destination_state(app):
    with app.app_context():
        rows = db.session.scalars(sa.select(Destination)).all()
        return [destination(app, row.id) for row in rows]


@pytest.fixture
def cases(app):
    """(name, page with the button, action URL, cancel URL, words the page must say, state)."""
    with app.app_context():
        connection = make_connection()
        uid = make_link(connection, whoop_user_id=4242, reference_id="member-7").uid
    new_key(app, "backend-prod")
    # A loopback destination (development mode): nothing is delivered in these tests.
    app.config["ALLOW_PRIVATE_DESTINATIONS"] = True
    with app.app_context():
        key_id, prefix = (
            db.session.scalar(sa.select(ApiKey.id)),
            db.session.scalar(sa.select(ApiKey.prefix)),
        )
    _, dest_id, _ = seed(
        app, "http://127.0.0.1:9/hook", environment="staging", hostname="staging.acme.test"
    )
    edit = f"/destinations/{dest_id}"
    return {
        "disconnect": (
            f"/links/{uid}",
            f"/links/{uid}/disconnect",
            f"/links/{uid}",
            ["Disconnect member-7?", "WHOOP user 4242", "Wipe the link's tokens"],
            link_state,
        ),
        "revoke key": (
            "/api-keys",
            f"/api-keys/{key_id}/revoke",
            "/api-keys",
            ["Revoke the API key “backend-prod”?", f"{prefix}…", "cannot be undone"],
            key_state,
        ),
        "delete destination": (
            edit,
            f"{edit}/delete",
            edit,
            ["Delete this destination?", "http://127.0.0.1:9/hook", "delivery log"],
            destination_state,
        ),
        "rotate secret": (
            edit,
            f"{edit}/rotate",
            edit,
            ["Rotate this destination's signing secret?", "http://127.0.0.1:9/hook"],
            destination_state,
        ),
    }


ACTIONS = ["disconnect", "revoke key", "delete destination", "rotate secret"]


@pytest.mark.parametrize("name", ACTIONS)
def test_the_button_leads_to_a_confirmation_page(app, operator_client, cases, name):
    page, action, cancel, words, state = cases[name]
    before = state(app)
    html = operator_client.get(page).get_data(as_text=True)
    # A plain link (works without JavaScript), not a form that acts on one click.
    assert f'href="{action}"' in html
    assert f'action="{action}"' not in html

    confirm = operator_client.get(action)
    assert confirm.status_code == 200
    text = unescape(confirm.get_data(as_text=True))
    assert 'data-testid="confirm-page"' in text
    for word in words:
        assert word in text, (name, word)
    form = re.search(
        rf'<form method="post" action="{re.escape(action)}"[^>]*>(.*?)</form>', text, re.S
    )
    assert form
    assert 'name="confirm" type="hidden" value="yes"' in form.group(1)
    assert 'name="csrf_token"' in form.group(1)
    assert re.search(rf'<a class="btn btn-link" href="{re.escape(cancel)}">Cancel</a>', text)
    assert "<script>" not in text.split("</main>")[0] and "onclick" not in text
    # Looking at the page changes nothing; nor does following Cancel.
    assert operator_client.get(cancel).status_code == 200
    assert state(app) == before

    # The confirmation's own form does it.
    done = operator_client.post(action, data={"csrf_token": csrf_from(text), "confirm": "yes"})
    assert done.status_code in (200, 303), done.data
    assert state(app) != before


@pytest.mark.parametrize("name", ACTIONS)
def test_the_old_one_click_post_does_nothing(app, operator_client, cases, name):
    """What the old button sent (a CSRF token, no ``confirm``) only shows the question."""
    page, action, _, words, state = cases[name]
    before = state(app)
    token = csrf_from(operator_client.get(page).get_data(as_text=True))
    for data in (
        {"csrf_token": token},
        {"csrf_token": token, "confirm": ""},
        {"csrf_token": token, "confirm": "no"},
    ):
        response = operator_client.post(action, data=data)
        assert response.status_code == 200
        assert words[0] in unescape(response.get_data(as_text=True))
    assert state(app) == before
    with app.app_context():
        actions = set(db.session.scalars(sa.select(AuditEvent.action)))
    assert not actions & {
        "link.disconnect",
        "api_key.revoke",
        "destination.delete",
        "destination.rotate_secret",
    }


@pytest.mark.parametrize("name", ACTIONS)
def test_a_confirmation_without_csrf_is_refused(app, operator_client, cases, name):
    """A forged cross-site form with ``confirm=yes`` but no valid token: 400, nothing done."""
    _, action, _, _, state = cases[name]
    before = state(app)
    for data in ({"confirm": "yes"}, {"confirm": "yes", "csrf_token": "forged"}):
        assert operator_client.post(action, data=data).status_code == 400
    assert state(app) == before


def test_support_staff_cannot_reach_the_confirmation_pages(app, client, auth, cases):
    from tests.factories import make_user

    with app.app_context():
        make_user("support")
    auth.login("support@example.com", "support-password")
    for name in ACTIONS:
        _, action, _, _, state = cases[name]
        before = state(app)
        assert client.get(action).status_code == 403, name
        assert state(app) == before


def test_a_disconnected_link_needs_no_confirmation(app, operator_client, cases):
    page, action, _, words, _ = cases["disconnect"]
    with app.app_context():
        db.session.scalar(sa.select(Link)).status = "revoked"
        db.session.commit()
    response = operator_client.get(action)
    assert response.headers["Location"] == page
    assert "already disconnected" in operator_client.get(page).get_data(as_text=True)
