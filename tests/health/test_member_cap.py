"""The member cap: recorded on the connection, warned about at 80 %, enforced at the cap."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from tests.api.conftest import new_key
from tests.api.support import ApiClient
from tests.factories import make_link
from tests.helpers import EndUser, csrf_from
from whoopadmin.audit import AuditEvent
from whoopadmin.connect import service as connect_service
from whoopadmin.connect.models import ConnectSession, Link, OAuthState
from whoopadmin.extensions import db
from whoopadmin.health import jobs
from whoopadmin.setup.models import Connection

FAILED = "https://app.acme.test/whoop/failed"


def settings(live, **fields):
    data = {
        "display_name": "Acme Health",
        "allowed_origins": "https://app.acme.test",
        "app_schemes": "",
        "rate_limit_per_minute": "100",
        "rate_limit_per_day": "10000",
        "member_cap": "",
    }
    data.update(fields)
    return live.wizard.post("/setup/production/settings", data)


def session_for(live, reference_id: str, **fields) -> str:
    with live.app.app_context():
        connection = db.session.scalar(sa.select(Connection))
        _, token = connect_service.create_session(
            connection, reference_id=reference_id, created_by="test", **fields
        )
    return token


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_at_the_cap_new_members_are_refused_before_anyone_goes_to_whoop(live, sandbox):
    assert settings(live, member_cap="2").headers["Location"] == "/setup/production/settings"
    first, second, late = (sandbox.state.create_member(days=2) for _ in range(3))
    live.connect(first, "user-1")
    early = session_for(live, "user-3")  # handed out while there was room
    early_with_url = session_for(live, "user-4", failure_redirect_url=FAILED)
    # user-3 is at WHOOP's consent page when the cap fills up.
    late_browser = live.app.test_client()  # the browser binding stays in this client
    authorize = live.start(session_for(live, "user-5"), late_browser).headers["Location"]
    live.connect(second, "user-2")
    with live.app.app_context():
        make_link(whoop_user_id=99, reference_id="gone", status="revoked")  # does not count

    # The API refuses a new member with 409 member_cap_reached; no session is made.
    api = ApiClient(live.app, new_key(live.app))
    sessions = count(live.app, ConnectSession)
    refused = api.post("/connect-sessions", json={"connection": "production", "reference_id": "x"})
    assert refused.status_code == 409 and refused.json["error"] == "member_cap_reached"
    assert count(live.app, ConnectSession) == sessions
    # A reconnect of a linked member adds no member: allowed.
    again = api.post(
        "/connect-sessions", json={"connection": "production", "reference_id": "user-1"}
    )
    assert again.status_code == 201, again.json

    # The admin page says so too.
    page = live.client.get("/setup/production/connect-links").get_data(as_text=True)
    assert "2 of 2 members linked: new connect sessions are refused" in page
    form = live.wizard.post(
        "/setup/production/connect-links", {"reference_id": "user-9", "expires_in": "15"}
    )
    assert form.status_code == 400 and b"reached its member cap" in form.data

    # An end user opening a link handed out earlier gets a clear page, before WHOOP.
    states = count(live.app, OAuthState)
    client = live.app.test_client()
    shown = client.get(f"/connect/{early}", base_url=live.base)
    assert shown.status_code == 409
    html = shown.get_data(as_text=True)
    assert 'data-reason="member_cap_reached"' in html and "cannot connect more" in html
    # ... or, with a failure URL, goes back there with the reason.
    back = client.get(f"/connect/{early_with_url}", base_url=live.base)
    assert back.status_code == 303
    location = urlsplit(back.headers["Location"])
    assert location._replace(query="").geturl() == FAILED
    assert parse_qs(location.query) == {
        "reason": ["member_cap_reached"],
        "reference_id": ["user-4"],
        "resource": ["whoop"],
    }
    # The button's POST, sent directly (a CSRF token taken from another open link), is
    # refused too: nobody is sent to WHOOP, no state is made.
    reconnect = session_for(live, "user-2")
    token = csrf_from(client.get(f"/connect/{reconnect}", base_url=live.base).get_data(True))
    forced = client.post(f"/connect/{early}/start", data={"csrf_token": token}, base_url=live.base)
    assert forced.status_code == 409 and b"member_cap_reached" in forced.data
    assert count(live.app, OAuthState) == states

    # The newcomer who was at WHOOP when the cap filled is refused at the callback, and the
    # fresh grant is revoked at WHOOP.
    answer = EndUser(live.app, sandbox, late).consent(authorize)
    parts = urlsplit(answer)
    back = late_browser.get(f"{parts.path}?{parts.query}", base_url=live.base)
    assert back.status_code == 303, back.data[:300]  # on to the clean result page
    done = late_browser.get(back.headers["Location"], base_url=live.base)
    assert b'data-reason="member_cap_reached"' in done.data
    with live.app.app_context():
        assert db.session.scalar(sa.select(Link).where(Link.whoop_user_id == late.user_id)) is None
    assert (live.whoop_app.client_id, late.user_id) not in sandbox.state.grants

    # A reconnect through the pages goes through at the cap.
    assert live.finish(first, session_for(live, "user-1")).status_code == 200


def test_the_cap_is_recorded_validated_and_audited(live):
    for bad, message in (
        ("0", b"Number must be between"),
        ("-3", b"Number must be between"),
        ("ten", b"Not a valid integer"),
        ("10000001", b"Number must be between"),
    ):
        response = settings(live, member_cap=bad)
        assert response.status_code == 400 and message in response.data, bad
        with live.app.app_context():
            assert db.session.scalar(sa.select(Connection.member_cap)) is None
    assert settings(live, member_cap="25").status_code == 303
    with live.app.app_context():
        assert db.session.scalar(sa.select(Connection.member_cap)) == 25
        event = db.session.scalar(
            sa.select(AuditEvent)
            .where(AuditEvent.action == "connection.settings")
            .order_by(AuditEvent.id.desc())
        )
        assert event.details["member_cap"] == 25 and event.actor == "operator@example.com"
    page = live.client.get("/setup/production/go-live").get_data(as_text=True)
    assert "of 25 (the cap recorded under Settings)" in page
    # Empty: WHOOP's default, 10 until approved, none after.
    settings(live, member_cap="")
    page = live.client.get("/setup/production/go-live").get_data(as_text=True)
    assert "0</strong>\n   of 10 (WHOOP caps apps" in page
    settings(live, member_cap="", approved_by_whoop="y")
    page = live.client.get("/setup/production/go-live").get_data(as_text=True)
    assert "Linked WHOOP members: <strong>0</strong>\n  ." in page


@pytest.mark.parametrize(("members", "state"), [(3, "ok"), (4, "warning"), (5, "problem")])
def test_the_dashboard_and_go_live_page_warn_from_80_percent(live, warnings_to, members, state):
    settings(live, member_cap="5")
    with live.app.app_context():
        for n in range(members):
            make_link(whoop_user_id=500 + n)
        jobs.evaluate_all()
        jobs.evaluate_all()
    dashboard = live.client.get("/").get_data(as_text=True)
    assert f'data-signal="member_cap" data-state="{state}"' in dashboard
    assert f"{members} of 5 members linked." in dashboard
    go_live = live.client.get("/setup/production/go-live").get_data(as_text=True)
    assert ('data-testid="member-cap-warning"' in go_live) is (state != "ok")
    events = [e for e in warnings_to() if e["signal"] == "member_cap"]
    if state == "ok":
        assert events == []
    else:
        (event,) = events
        assert event["state"] == state and event["next_step"]
        assert event["details"] == {"members": members, "cap": 5}
