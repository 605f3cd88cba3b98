"""The support and audit pages say what happened in words: no ``None``, no raw codes or JSON,
numbers with their nouns agreeing, and actions that cannot work refused with the reason."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from rq import Queue

from tests.factories import make_link, make_user
from tests.helpers import AuthActions, post_confirmed, post_form, spend_refresh_token
from whoopadmin.audit import AuditEvent
from whoopadmin.connect.models import Link
from whoopadmin.extensions import db
from whoopadmin.redisconn import get_redis
from whoopadmin.support import wording


@pytest.fixture
def operator(configured_app):
    client = configured_app.test_client()
    AuthActions(client).login()
    return client


def _uid(app, link_id):
    with app.app_context():
        return db.session.get(Link, link_id).uid


def _timeline(html: str) -> str:
    return html.split('data-testid="timeline"')[1].split("</ul>")[0]


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_disconnect_reads_as_words(configured_app, linked, operator):
    page = f"/links/{_uid(configured_app, linked)}"
    flash = operator.get(post_confirmed(operator, f"{page}/disconnect").headers["Location"])
    timeline = _text(_timeline(flash.text))
    assert "Disconnected" in timeline
    assert "by operator@example.com: revoked at WHOOP, tokens wiped" in timeline
    assert "None" not in timeline and "whoop_revoke_error" not in timeline
    assert "No tokens: the link was disconnected" in flash.text


def test_invalid_grant_says_what_happened(configured_app, linked, operator, sandbox):
    from whoopadmin.sync import tokens

    with configured_app.app_context():
        refresh_token = db.session.get(Link, linked).refresh_token
    spend_refresh_token(configured_app, sandbox, refresh_token)
    with configured_app.app_context():
        assert tokens.refresh_link(linked, "scheduled", force=True) == "reauth_required"
    html = operator.get(f"/links/{_uid(configured_app, linked)}").text
    health = _text(html.split('data-testid="token-health"')[1].split("</div>")[0])
    assert "WHOOP refused the refresh token (invalid_grant): the member must reconnect" in health
    assert "in a row: 0" not in health and "Failed refreshes in a row" not in health
    timeline = _text(_timeline(html))
    assert "Reconnect needed" in timeline and "send the member a reconnect link" in timeline
    assert "started by the scheduled refresh" in timeline


def test_refresh_failures_are_counted_in_words(configured_app, operator):
    with configured_app.app_context():
        one = make_link(whoop_user_id=7001, refresh_failures=1, last_refresh_result="Timeout")
        three = make_link(whoop_user_id=7003, refresh_failures=3, last_refresh_result="Timeout")
        uids = one.uid, three.uid
    assert "1 failed refresh in a row" in operator.get(f"/links/{uids[0]}").text
    assert "3 failed refreshes in a row" in operator.get(f"/links/{uids[1]}").text


@pytest.mark.parametrize("status", ["revoked", "reauth_required"])
def test_resync_and_refresh_are_refused_with_a_reason(configured_app, operator, status):
    with configured_app.app_context():
        uid = make_link(whoop_user_id=8001, status=status).uid
    page = f"/links/{uid}"
    html = operator.get(page).text
    assert 'data-testid="sync-refusal"' in html
    assert re.search(r"<button[^>]*disabled[^>]*>Re-sync 30 days</button>", html)
    assert re.search(r"<button[^>]*disabled[^>]*>Refresh tokens now</button>", html)
    for action, word in (("resync", "Not re-synced."), ("refresh", "Not refreshed.")):
        # A script posts anyway (the disabled button is only a hint): still refused.
        answer = post_form(operator, f"{page}/{action}", page)
        assert answer.headers["Location"] == page
        shown = operator.get(page).text
        assert word in shown and "reconnect link" in shown and "queued" not in shown
    with configured_app.app_context():
        redis = get_redis(configured_app)
        assert Queue("refresh", connection=redis).jobs == []
        assert [j for j in Queue("backfill", connection=redis).jobs if "resync" in j.id] == []
        actions = db.session.scalars(sa.select(AuditEvent.action)).all()
        assert "link.resync" not in actions and "link.refresh_now" not in actions


def test_an_active_link_can_still_be_resynced(configured_app, linked, operator):
    page = f"/links/{_uid(configured_app, linked)}"
    assert 'data-testid="sync-refusal"' not in operator.get(page).text
    shown = operator.get(post_form(operator, f"{page}/resync", page).headers["Location"]).text
    assert "Re-sync queued" in shown


def test_audit_targets_are_named_and_linked(configured_app, linked, operator):
    page = f"/links/{_uid(configured_app, linked)}"
    post_confirmed(operator, f"{page}/disconnect")
    with configured_app.app_context():
        staff_id = db.session.scalar(sa.select(AuditEvent.actor_id).where(AuditEvent.actor_id > 0))
    html = operator.get("/audit").text
    assert 'href="/setup/production">production (Acme Health)</a>' in html
    assert f'href="{page}">user-42</a>' in html
    assert f'href="/staff/{staff_id}">operator@example.com</a>' in html
    assert "Went live" in html and "Subdomain changed" in html
    # Details are key/value pairs, not JSON; an old/new pair reads as one change.
    assert "{&#34;" not in html and '{"' not in html
    assert "(none) → whoop.acme.test" in html
    assert "connections 1" not in _text(html)


def test_audit_of_a_deleted_target(configured_app, operator):
    with configured_app.app_context():
        db.session.add_all(
            [
                AuditEvent(
                    actor="x@example.com",
                    action="destination.delete",
                    target_type="destinations",
                    target_id="99",
                    details={"url": "https://gone.example/hook"},
                ),
                AuditEvent(
                    actor="cli",
                    action="something.new",
                    target_type="widgets",
                    target_id="5",
                    details={"a_value": None, "flag": True, "items": ["a", "b"]},
                ),
            ]
        )
        db.session.commit()
    text = _text(operator.get("/audit").text)
    assert "Destination https://gone.example/hook (deleted)" in text
    assert "Something new" in text and "#5 (no longer exists)" in text
    assert "Flag yes" in text and "Items a, b" in text and "None" not in text


def test_member_counts_agree_with_their_numbers(configured_app, operator):
    def members() -> str:
        html = operator.get("/").text
        return _text(html.split('data-testid="members"')[1].split("<br>")[0])

    assert "0 linked members" in members()
    with configured_app.app_context():
        make_link(whoop_user_id=9001)
    assert "1 linked member " in members() + " "
    with configured_app.app_context():
        make_link(whoop_user_id=9002)
    assert "2 linked members" in members()


def test_unknown_events_read_without_none():
    title, detail = wording.describe_event(
        "future_kind", None, {"whoop_revoke_error": None, "some_field": "x", "access_token": "t"}
    )
    assert title == "Future kind" and detail == "Some field: x"
    assert wording.describe_event("disconnect", None, {"by": "cli", "whoop_revoked": False}) == (
        "Disconnected",
        "by cli: no token to revoke at WHOOP; tokens wiped",
    )
    assert wording.counted(1, "entry", "entries") == "1 entry"
    assert wording.counted(0, "entry", "entries") == "0 entries"


def test_support_staff_see_the_same_words(configured_app, linked):
    with configured_app.app_context():
        make_user("support")
    client = configured_app.test_client()
    AuthActions(client).login("support@example.com", "support-password")
    timeline = _text(_timeline(client.get(f"/links/{_uid(configured_app, linked)}").text))
    assert "Connected — as user-42 (connect link cs_" in timeline


def test_jobs_page_says_what_each_periodic_job_does(configured_app, operator):
    text = _text(operator.get("/jobs").text)
    assert "DNS checks that are due" in text and "every minute" in text
    assert "every 5 minutes" in text and "every hour" in text
    assert " 60 s " not in text and "3600 s" not in text
    assert "Nothing has run yet: is whoopadmin cron running?" in text
    assert [wording.every(n) for n in (1, 90, 7200, 86400)] == [
        "every 1 second",
        "every 90 seconds",
        "every 2 hours",
        "every day",
    ]


def test_go_live_checklist_does_not_repeat_itself(configured_app, operator, wizard):
    text = _text(operator.get("/setup/production/go-live").text)
    assert text.count("WHOOP accepted the client id and secret") == 1
    wizard.create("staging", "Acme staging")
    staging = _text(operator.get("/setup/staging/go-live").text)
    assert "Choose a subdomain first." in staging and "Status: draft" not in staging


def test_recent_connect_links_say_whether_they_connected(configured_app, end_user, new_session):
    operator = configured_app.test_client()
    AuthActions(operator).login()
    end_user.connect(new_session(reference_id="did-connect"))
    new_session(reference_id="still-open")
    rows = operator.get("/setup/production/connect-links").text.split('data-testid="recent-links"')[
        1
    ]
    rows = {r.split("</td>")[1]: _text(r) for r in rows.split("<tr>")[2:]}
    assert "connected" in rows["<td>did-connect"] and "open" in rows["<td>still-open"]
