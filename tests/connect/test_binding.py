"""A state only counts from the browser that started the flow, and PKCE ties each code to
its state: the code-injection attacks of issue 14, against the sandbox over real HTTP."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from tests.connect.support import deliveries, events, links
from tests.helpers import PUBLIC, EndUser, follow_result, query
from whoopadmin.connect.binding import COOKIE_PATH, cookie_name
from whoopadmin.connect.models import ConnectSession, OAuthState
from whoopadmin.extensions import db

FAILED = "https://app.acme.test/whoop/failed?"
DONE = "https://app.acme.test/whoop/done?"


def _browser(app, sandbox, **member):
    return EndUser(app, sandbox, sandbox.state.create_member(days=3, **member))


def _reason(response) -> str | None:
    return query(response.headers["Location"]).get("reason")


def test_code_injected_from_another_browser_is_refused(
    configured_app, sandbox, new_session, destination
):
    """Browser A starts for user-A; B consents as member X on A's authorize page, takes X's
    code and sends it with A's state from B (without A's cookie)."""
    victim = _browser(configured_app, sandbox)
    attacker = _browser(configured_app, sandbox)
    authorize = victim.start(new_session(reference_id="user-A"))
    stolen = attacker.consent(authorize)  # X's code, A's state

    response = attacker.callback(stolen)
    assert response.headers["Location"].startswith(FAILED)
    assert _reason(response) == "state_mismatch"
    assert links(configured_app) == []
    (failed,) = [e for e in events(configured_app) if e.kind == "connect_failed"]
    assert failed.reason == "state_mismatch" and failed.session_id is not None
    assert [d["data"]["reason"] for d in deliveries(configured_app, "auth.error")] == [
        "state_mismatch"
    ]
    with configured_app.app_context():  # nothing was claimed
        assert db.session.scalar(sa.select(OAuthState.used_at)) is None
        assert db.session.scalar(sa.select(ConnectSession.used_at)) is None

    # The browser that started the flow still finishes it, for its own member.
    done = victim.callback(victim.consent(authorize))
    assert done.headers["Location"].startswith(DONE)
    (link,) = links(configured_app)
    assert link.whoop_user_id == victim.member.user_id and link.reference_id == "user-A"


def test_injection_with_the_attackers_own_binding_is_refused(configured_app, sandbox, new_session):
    """B starts a flow of its own (so it holds a binding cookie of its own) and sends X's
    code with A's state; then with its cookie copied under A's state's name."""
    victim = _browser(configured_app, sandbox)
    attacker = _browser(configured_app, sandbox)
    authorize = victim.start(new_session(reference_id="user-A"))
    stolen = attacker.consent(authorize)
    own_state = query(attacker.start(new_session(reference_id="user-B")))["state"]
    own_binding = attacker.binding(own_state)
    assert own_binding

    assert _reason(attacker.callback(stolen)) == "state_mismatch"
    attacker.give_binding(query(stolen)["state"], own_binding)  # a binding of another session
    assert _reason(attacker.callback(stolen)) == "state_mismatch"
    assert links(configured_app) == []
    # A's flow is intact.
    assert victim.callback(victim.consent(authorize)).headers["Location"].startswith(DONE)


def test_code_for_one_states_challenge_fails_under_another_verifier(
    configured_app, sandbox, new_session
):
    """B starts its own flow and feeds it a code issued for A's authorization request (A's
    PKCE challenge): the state and cookie are B's own, the sandbox refuses the exchange."""
    victim = _browser(configured_app, sandbox)
    attacker = _browser(configured_app, sandbox)
    victims_code = query(attacker.consent(victim.start(new_session(reference_id="user-A"))))["code"]
    own_state = query(attacker.start(new_session(reference_id="user-B")))["state"]

    response = attacker.client.get(
        "/auth/whoop/oauth2",
        query_string={"code": victims_code, "state": own_state},
        base_url=PUBLIC,
    )
    assert _reason(response) == "exchange_failed"
    assert links(configured_app) == []
    (failed,) = [e for e in events(configured_app) if e.kind == "connect_failed"]
    assert failed.details == {"whoop_error": "invalid_grant"}  # the sandbox's PKCE refusal


def test_binding_cookie_attributes_and_storage(configured_app, end_user, new_session):
    location = end_user.start(new_session())
    state = query(location)["state"]
    (header,) = [
        h
        for h in end_user.started.headers.getlist("Set-Cookie")
        if h.startswith(cookie_name(state))
    ]
    attributes = [part.strip() for part in header.split(";")]
    value = attributes[0].split("=", 1)[1]
    assert len(value) >= 43
    lowered = {a.lower() for a in attributes[1:]}
    assert {"httponly", "secure", "samesite=lax", f"path={COOKIE_PATH}", "max-age=600"} <= lowered
    assert not any(a.startswith("domain=") for a in lowered)  # host-only: the connection's host
    with configured_app.app_context():
        record = db.session.scalar(sa.select(OAuthState))
        assert record.binding_hash == hashlib.sha256(value.encode()).hexdigest()
        assert value not in repr(
            db.session.execute(sa.select(OAuthState.__table__)).all()
        )  # only its hash is stored

    # The callback uses the cookie up and tells the browser to drop it.
    response = end_user.callback(end_user.consent(location))
    assert response.headers["Location"].startswith(DONE)
    cleared = [
        h for h in response.headers.getlist("Set-Cookie") if h.startswith(cookie_name(state))
    ]
    assert cleared and "Max-Age=0" in cleared[0]
    assert end_user.binding(state) is None


def test_two_flows_in_one_browser_do_not_clash(configured_app, sandbox, new_session):
    browser = _browser(configured_app, sandbox)
    first = browser.start(new_session(reference_id="user-1"))
    second = browser.start(new_session(reference_id="user-1"))
    # The later tab's start did not overwrite the earlier one's binding, and finishing
    # the first did not clear the second's.
    assert browser.callback(browser.consent(first)).headers["Location"].startswith(DONE)
    assert browser.callback(browser.consent(second)).headers["Location"].startswith(DONE)
    assert len(links(configured_app)) == 1


@pytest.mark.parametrize(
    "value",
    [
        "",
        "x" * 5000,  # overlong
        "é\u202ebinding",  # not ASCII
        '"unterminated',
        "%00%ff; other=1",
        "a" * 43,  # well formed, wrong
    ],
)
def test_junk_binding_cookies_are_a_clean_refusal(configured_app, end_user, new_session, value):
    location = end_user.consent(end_user.start(new_session(failure_redirect_url=None)))
    params = query(location)
    thief = configured_app.test_client()
    response = thief.get(
        "/auth/whoop/oauth2",
        query_string=params,
        base_url=PUBLIC,
        headers={"Cookie": f"{cookie_name(params['state'])}={value}"},
    )
    response = follow_result(thief, response)
    assert b'data-reason="state_mismatch"' in response.data
    assert links(configured_app) == []
    # The real browser finishes afterwards.
    assert end_user.callback(location).headers["Location"].startswith(DONE)
    assert len(links(configured_app)) == 1


def test_refusal_on_the_hosted_page_and_no_claim(configured_app, end_user, new_session):
    location = end_user.consent(end_user.start(new_session(failure_redirect_url=None)))
    other = EndUser(configured_app, end_user.sandbox, end_user.member)
    response = other.landing(other.callback(location))
    assert b'data-reason="state_mismatch"' in response.data
    assert b"another browser" in response.data
    # Even WHOOP's "denied" answer from another browser cannot burn the real user's state.
    denied = other.client.get(
        "/auth/whoop/oauth2",
        query_string={"error": "access_denied", "state": query(location)["state"]},
        base_url=PUBLIC,
    )
    assert b'data-reason="state_mismatch"' in other.landing(denied).data
    assert end_user.callback(location).headers["Location"].startswith(DONE)
