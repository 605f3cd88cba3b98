"""No silent re-pointing: a linked member who consents under another reference id is
refused (or moved, if the operator chose that), and support's reconnect links only work for
their own link's member."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from tests.connect.support import deliveries, events, links
from tests.helpers import EndUser, csrf_from, query, token_works
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection

DONE = "https://app.acme.test/whoop/done?"
FAILED = "https://app.acme.test/whoop/failed?"
SETTINGS = {
    "display_name": "Acme Health",
    "allowed_origins": "https://app.acme.test",
    "app_schemes": "acmehealth",
    "rate_limit_per_minute": "100",
    "rate_limit_per_day": "10000",
    "backfill_days": "7",
}
STORED = (
    "reference_id",
    "status",
    "status_reason",
    "access_token_sealed",
    "refresh_token_sealed",
    "token_version",
    "scopes",
    "access_expires_at",
    "connected_at",
)


def _snapshot(link) -> dict:
    return {name: getattr(link, name) for name in STORED}


def _connection(app) -> Connection:
    with app.app_context():
        connection = db.session.scalar(sa.select(Connection))
        db.session.expunge(connection)
        return connection


def test_linked_member_under_a_new_reference_is_refused(
    configured_app, end_user, new_session, sandbox, destination
):
    assert end_user.connect(new_session(reference_id="user-A")).headers["Location"].startswith(DONE)
    (before,) = links(configured_app)

    response = end_user.connect(new_session(reference_id="user-B"))
    assert response.headers["Location"].startswith(FAILED)
    assert query(response.headers["Location"]) == {
        "reason": "already_linked",
        "reference_id": "user-B",
        "resource": "whoop",
    }
    (after,) = links(configured_app)
    assert after.id == before.id and _snapshot(after) == _snapshot(before)
    assert token_works(sandbox, after.access)  # the existing link's tokens still work
    (refused,) = [e for e in events(configured_app, before.id) if e.kind == "connect_failed"]
    assert refused.reason == "already_linked"
    (error,) = deliveries(configured_app, "auth.error")
    assert error["data"]["reason"] == "already_linked"
    assert error["data"]["reference_id"] == "user-B"
    assert error["user"]["reference_id"] == "user-A"  # which link holds the member
    assert deliveries(configured_app, "user.reference_changed") == []


def test_move_policy_moves_and_says_so(configured_app, end_user, new_session, wizard, destination):
    response = wizard.post(
        "/setup/production/settings", {**SETTINGS, "reference_id_policy": "move"}
    )
    assert response.headers["Location"] == "/setup/production/settings"
    assert _connection(configured_app).reference_id_policy == "move"
    end_user.connect(new_session(reference_id="user-A"))
    (before,) = links(configured_app)

    response = end_user.connect(new_session(reference_id="user-B"))
    assert query(response.headers["Location"])["user_id"] == before.uid
    (after,) = links(configured_app)
    assert after.id == before.id and after.reference_id == "user-B"
    (moved,) = [e for e in events(configured_app, after.id) if e.kind == "reference_changed"]
    assert moved.details["previous_reference_id"] == "user-A"
    assert moved.details["reference_id"] == "user-B"
    (event,) = deliveries(configured_app, "user.reference_changed")
    assert event["data"]["previous_reference_id"] == "user-A"
    assert event["data"]["reference_id"] == "user-B"
    assert event["user"]["reference_id"] == "user-B"


def _reconnect_token(client, uid: str) -> str:
    page = f"/links/{uid}"
    token = csrf_from(client.get(page).get_data(as_text=True))
    response = client.post(f"{page}/reconnect", data={"csrf_token": token})
    assert response.status_code == 200
    url = re.search(r"https://whoop\.acme\.test/connect/([\w-]+)", response.get_data(as_text=True))
    return url.group(1)


def test_reconnect_link_works_for_its_member(configured_app, end_user, new_session, support_client):
    end_user.connect(new_session(reference_id="user-A"))
    (link,) = links(configured_app)
    token = _reconnect_token(support_client, link.uid)
    fresh = EndUser(configured_app, end_user.sandbox, end_user.member)  # on another device
    response = fresh.landing(fresh.connect(token))
    assert response.status_code == 200 and b'data-testid="connect-success"' in response.data
    (after,) = links(configured_app)
    assert after.token_version == link.token_version + 1


def test_reconnect_link_refuses_another_member(
    configured_app, end_user, new_session, support_client, sandbox, destination
):
    end_user.connect(new_session(reference_id="user-A"))
    (link,) = links(configured_app)
    token = _reconnect_token(support_client, link.uid)
    stranger = EndUser(configured_app, sandbox, sandbox.state.create_member(days=3))

    response = stranger.landing(stranger.connect(token))
    assert b'data-reason="wrong_account"' in response.data
    (after,) = links(configured_app)  # no new link for the stranger
    assert _snapshot(after) == _snapshot(link)
    (refused,) = [e for e in events(configured_app, link.id) if e.kind == "connect_failed"]
    assert refused.reason == "wrong_account"
    assert [d["data"]["reason"] for d in deliveries(configured_app, "auth.error")] == [
        "wrong_account"
    ]
    # The stranger's fresh grant is revoked, so it does not count towards WHOOP's cap.
    client_id = configured_app.whoop_app.client_id
    assert (client_id, stranger.member.user_id) not in sandbox.state.grants
    assert (client_id, end_user.member.user_id) in sandbox.state.grants


def test_reconnect_link_for_l_used_by_a_member_linked_elsewhere(
    configured_app, end_user, new_session, support_client, sandbox
):
    end_user.connect(new_session(reference_id="user-A"))
    other = EndUser(configured_app, sandbox, sandbox.state.create_member(days=3))
    other.connect(new_session(reference_id="user-X"))
    first, second = links(configured_app)
    token = _reconnect_token(support_client, first.uid)

    response = other.landing(other.connect(token))
    assert b'data-reason="wrong_account"' in response.data
    assert [_snapshot(link) for link in links(configured_app)] == [
        _snapshot(first),
        _snapshot(second),
    ]
    # X's own link is not revoked at WHOOP by the refusal.
    assert token_works(sandbox, second.access)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("reference_id_policy", "sideways", "Not a valid choice"),
        ("reference_id_policy", "", "Not a valid choice"),
        ("pkce_off", "maybe", "Tick the box or leave it empty."),
    ],
)
def test_settings_refuse_bad_values(configured_app, wizard, field, value, message):
    before = _connection(configured_app)
    response = wizard.post("/setup/production/settings", {**SETTINGS, field: value})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    after = _connection(configured_app)
    assert (after.reference_id_policy, after.use_pkce, after.backfill_days) == (
        before.reference_id_policy,
        before.use_pkce,
        before.backfill_days,
    )


def test_settings_show_safe_defaults(configured_app, wizard):
    page = wizard.client.get("/setup/production/settings").get_data(as_text=True)
    assert "When a member connects under a new reference id" in page
    assert re.search(r'<option selected value="refuse">|<option value="refuse" selected', page)
    assert "Compatibility: turn PKCE off" in page
    assert re.search(r'<input[^>]*id="pkce_off"[^>]*>', page)
    assert "checked" not in re.search(r'<input[^>]*id="pkce_off"[^>]*>', page).group(0)


def test_pkce_switched_off_for_compatibility(configured_app, wizard, end_user, new_session):
    response = wizard.post("/setup/production/settings", {**SETTINGS, "pkce_off": "y"})
    assert response.headers["Location"] == "/setup/production/settings"
    connection = _connection(configured_app)
    assert connection.use_pkce is False and connection.backfill_days == 7
    authorize = end_user.start(new_session())
    assert "code_challenge" not in query(authorize)
    assert end_user.callback(end_user.consent(authorize)).headers["Location"].startswith(DONE)
    # Unticking it turns PKCE back on.
    wizard.post("/setup/production/settings", SETTINGS)
    assert _connection(configured_app).use_pkce is True
    assert "code_challenge" in query(end_user.start(new_session()))


def test_already_linked_on_the_hosted_page(configured_app, end_user, new_session):
    """The hosted failure page explains already_linked in plain words."""
    end_user.connect(new_session(reference_id="user-A"))
    response = end_user.landing(
        end_user.connect(
            new_session(reference_id="user-B", success_redirect_url=None, failure_redirect_url=None)
        )
    )
    assert b'data-reason="already_linked"' in response.data
    assert b"already connected to another user" in response.data
