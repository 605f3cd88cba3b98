"""The connect flow against the WHOOP sandbox over real HTTP on loopback."""

from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa
from rq import Queue

from tests.connect.support import deliveries
from tests.helpers import PUBLIC, EndUser, query
from whoopadmin.audit import utcnow
from whoopadmin.connect.models import ConnectSession, Link, LinkEvent, OAuthState
from whoopadmin.extensions import db
from whoopadmin.redisconn import get_redis


def _links(app):
    with app.app_context():
        links = db.session.scalars(sa.select(Link)).all()
        for link in links:
            db.session.expunge(link)
        return links


def _events(app):
    with app.app_context():
        return [(e.kind, e.reason) for e in db.session.scalars(sa.select(LinkEvent))]


def test_connect_page_shows_what_is_shared(end_user, new_session):
    page = end_user.open(new_session()).get_data(as_text=True)
    assert "Connect your WHOOP account to Acme Health" in page
    for scope in ("read:recovery", "read:sleep", "read:workout", "offline"):
        assert f'data-scope="{scope}"' in page


def test_full_flow(configured_app, end_user, new_session, sandbox, member):
    token = new_session()
    authorize = end_user.start(token)
    params = query(authorize)
    assert authorize.startswith(sandbox.auth_url)
    assert params["client_id"] == configured_app.whoop_app.client_id
    assert params["redirect_uri"] == f"{PUBLIC}/auth/whoop/oauth2"
    assert set(params["scope"].split()) >= {"offline", "read:profile", "read:recovery"}
    assert len(params["state"]) >= 8
    response = end_user.callback(end_user.consent(authorize))
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith("https://app.acme.test/whoop/done?")
    got = query(location)
    (link,) = _links(configured_app)
    assert got == {"x": "1", "user_id": link.uid, "reference_id": "user-42", "resource": "whoop"}
    assert link.whoop_user_id == member.user_id and link.status == "active"
    assert link.email_hash and len(link.email_hash) == 64
    with configured_app.app_context():
        stored = db.session.get(Link, link.id)
        access = stored.access_token
        assert stored.email == member.email
        assert stored.refresh_token and stored.access_expires_at > utcnow()
        # Sealed at rest: the raw columns hold no token.
        assert access not in stored.access_token_sealed
        queue = Queue("backfill", connection=get_redis(configured_app))
        assert [job.args for job in queue.jobs] == [(link.id,)]
        session = db.session.scalar(sa.select(ConnectSession))
        assert session.used_at is not None and session.link_id == link.id
    # The stored access token is a working WHOOP token.
    profile = requests.get(
        f"{sandbox.api_base}/v2/user/profile/basic",
        headers={"Authorization": f"Bearer {access}"},
        timeout=10,
    )
    assert profile.json()["user_id"] == member.user_id
    profile.close()
    assert ("connect", None) in _events(configured_app)


def test_hosted_success_page_without_redirect(configured_app, end_user, new_session):
    token = new_session(success_redirect_url=None, failure_redirect_url=None)
    response = end_user.landing(end_user.connect(token))
    assert response.status_code == 200
    assert b'data-testid="connect-success"' in response.data
    assert len(_links(configured_app)) == 1


def test_app_scheme_redirect(configured_app, end_user, new_session):
    token = new_session(success_redirect_url="acmehealth://whoop/connected")
    response = end_user.connect(token)
    assert response.headers["Location"].startswith("acmehealth://whoop/connected?user_id=")


def test_denied_consent(configured_app, end_user, new_session):
    token = new_session()
    response = end_user.connect(token, action="deny")
    assert query(response.headers["Location"]) == {
        "reason": "access_denied",
        "reference_id": "user-42",
        "resource": "whoop",
    }
    assert response.headers["Location"].startswith("https://app.acme.test/whoop/failed?")
    assert _links(configured_app) == []
    assert ("connect_failed", "access_denied") in _events(configured_app)
    # Denying does not use up the link: the user may change their mind.
    assert (
        end_user.connect(token).headers["Location"].startswith("https://app.acme.test/whoop/done")
    )


def test_denied_consent_hosted_page(configured_app, end_user, new_session):
    token = new_session(failure_redirect_url=None)
    response = end_user.landing(end_user.connect(token, action="deny"))
    assert b'data-reason="access_denied"' in response.data


def test_used_link(configured_app, end_user, new_session):
    token = new_session()
    end_user.connect(token)
    page = end_user.open(token)
    # The member did connect with it: the page says so, not "was not connected".
    assert page.status_code == 200
    assert b'data-reason="already_connected"' in page.data
    assert b"Your WHOOP account is already connected" in page.data
    assert b"was not connected" not in page.data


def test_expired_link(configured_app, end_user, new_session):
    token = new_session()
    with configured_app.app_context():
        session = db.session.scalar(sa.select(ConnectSession))
        session.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    page = end_user.open(token)
    assert page.status_code == 410 and b'data-reason="session_expired"' in page.data


def test_unknown_link(end_user, new_session):
    new_session()
    for token in ("nope", "x" * 300):
        page = end_user.open(token)
        assert page.status_code == 404
    assert end_user.open("%00").status_code == 400  # NUL is refused before any lookup
    assert b'data-reason="invalid_session"' in end_user.open("nope").data


def test_link_expiring_between_start_and_callback(configured_app, end_user, new_session):
    token = new_session()
    location = end_user.consent(end_user.start(token))
    with configured_app.app_context():
        session = db.session.scalar(sa.select(ConnectSession))
        session.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    response = end_user.callback(location)
    assert query(response.headers["Location"])["reason"] == "session_expired"
    assert _links(configured_app) == []


def test_state_replay(configured_app, end_user, new_session):
    location = end_user.consent(end_user.start(new_session()))
    assert (
        end_user.callback(location)
        .headers["Location"]
        .startswith("https://app.acme.test/whoop/done")
    )
    again = end_user.callback(location)
    assert query(again.headers["Location"])["reason"] == "state_replayed"
    assert len(_links(configured_app)) == 1


def test_state_tampered_or_missing(configured_app, end_user, new_session):
    location = end_user.consent(end_user.start(new_session()))
    params = query(location)
    real = params["state"]
    tampered = real[:-1] + ("x" if real[-1] != "x" else "y")  # never the state itself
    for state in (tampered, "short", "", "a" * 500):
        response = end_user.client.get(
            "/auth/whoop/oauth2",
            query_string={"code": params["code"], "state": state},
            base_url=PUBLIC,
        )
        assert b'data-reason="invalid_state"' in end_user.landing(response).data
    assert _links(configured_app) == []
    # The real state still works afterwards.
    assert end_user.callback(location).status_code == 303
    assert len(_links(configured_app)) == 1


def test_state_expired(configured_app, end_user, new_session):
    location = end_user.consent(end_user.start(new_session()))
    with configured_app.app_context():
        state = db.session.scalar(sa.select(OAuthState))
        state.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    response = end_user.callback(location)
    assert query(response.headers["Location"])["reason"] == "state_expired"


def test_missing_code(configured_app, end_user, new_session):
    location = end_user.consent(end_user.start(new_session()))
    state = query(location)["state"]
    response = end_user.client.get(
        "/auth/whoop/oauth2", query_string={"state": state}, base_url=PUBLIC
    )
    assert query(response.headers["Location"])["reason"] == "missing_code"


def test_exchange_failure(configured_app, end_user, new_session):
    location = end_user.consent(end_user.start(new_session()))
    params = query(location)
    response = end_user.client.get(
        "/auth/whoop/oauth2",
        query_string={"state": params["state"], "code": "not-a-real-code"},
        base_url=PUBLIC,
    )
    assert query(response.headers["Location"])["reason"] == "exchange_failed"
    assert ("connect_failed", "exchange_failed") in _events(configured_app)


def test_missing_scopes(configured_app, end_user, new_session, sandbox):
    # The user unticks "offline": WHOOP issues no refresh token.
    authorize = end_user.start(new_session())
    narrowed = authorize.replace("offline+", "").replace("offline%20", "")
    assert "offline" not in query(narrowed)["scope"]
    response = end_user.callback(end_user.consent(narrowed))
    assert query(response.headers["Location"])["reason"] == "missing_scopes"
    assert _links(configured_app) == []


def test_profile_failure(configured_app, end_user, new_session, sandbox):
    location = end_user.consent(end_user.start(new_session()))
    sandbox.state.set_faults({"error_rate": 1.0, "include_oauth": False})
    try:
        response = end_user.callback(location)
    finally:
        sandbox.state.set_faults({"error_rate": 0.0})
    assert query(response.headers["Location"])["reason"] == "profile_failed"


def test_reconnect_updates_the_same_link(configured_app, end_user, new_session, destination):
    end_user.connect(new_session(reference_id="user-42"))
    (first,) = _links(configured_app)
    response = end_user.connect(new_session(reference_id="user-42"))
    assert query(response.headers["Location"])["user_id"] == first.uid
    (second,) = _links(configured_app)
    assert second.id == first.id and second.reference_id == "user-42"
    assert second.token_version == first.token_version + 1
    assert ("user_reauth", None) in _events(configured_app)
    (reauth,) = deliveries(configured_app, "user_reauth")
    assert reauth["user"]["reference_id"] == "user-42"


def test_reconnect_revives_a_revoked_link(configured_app, end_user, new_session):
    from whoopadmin.connect.service import disconnect

    end_user.connect(new_session())
    with configured_app.app_context():
        link = db.session.scalar(sa.select(Link))
        disconnect(link, "test")
        assert link.status == "revoked" and link.access_token is None
    end_user.connect(new_session())
    (link,) = _links(configured_app)
    assert link.status == "active" and link.revoked_at is None


def test_two_members_two_links(configured_app, sandbox, new_session):
    for _ in range(2):
        EndUser(configured_app, sandbox, sandbox.state.create_member(days=3)).connect(new_session())
    assert len({link.whoop_user_id for link in _links(configured_app)}) == 2


def test_double_callback_race(configured_app, end_user, new_session, sandbox, member):
    """The same redirect delivered twice at once: one link, one success, one replay."""
    import threading

    location = end_user.consent(end_user.start(new_session()))
    state = query(location)["state"]
    results = []
    barrier = threading.Barrier(2)

    def hit():
        browser = EndUser(configured_app, sandbox, member)  # its own client per thread
        browser.give_binding(state, end_user.binding(state))  # ...of the same browser
        barrier.wait()
        results.append(browser.callback(location))

    threads = [threading.Thread(target=hit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    reasons = sorted(query(r.headers["Location"]).get("reason", "ok") for r in results)
    assert reasons == ["ok", "state_replayed"]
    assert len(_links(configured_app)) == 1


@pytest.mark.parametrize("path", ["/auth/whoop/oauth2", "/connect/abc"])
def test_public_pages_404_on_admin_host(configured_app, path):
    assert configured_app.test_client().get(path).status_code == 404


@pytest.mark.parametrize("path", ["/", "/login", "/setup", "/staff", "/api-keys"])
def test_admin_pages_404_on_connection_host(configured_app, path):
    response = configured_app.test_client().get(path, base_url=PUBLIC)
    assert response.status_code == 404


def test_health_answers_on_every_host(configured_app):
    client = configured_app.test_client()
    assert client.get("/healthz", base_url=PUBLIC).status_code == 200


def test_start_needs_csrf(end_user, new_session):
    token = new_session()
    response = end_user.client.post(f"/connect/{token}/start", base_url=PUBLIC)
    assert response.status_code == 400


def test_no_token_in_pages_or_logs(configured_app, end_user, new_session, caplog):
    response = end_user.connect(new_session(success_redirect_url=None))
    with configured_app.app_context():
        link = db.session.scalar(sa.select(Link))
        secrets = [link.access_token, link.refresh_token, configured_app.whoop_app.client_secret]
    text = response.get_data(as_text=True) + caplog.text
    for secret in secrets:
        assert secret not in text


def test_pkce_by_default(configured_app, end_user, new_session, sandbox):
    authorize = end_user.start(new_session())
    params = query(authorize)
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) >= 43
    # The sandbox checks the verifier that goes with the exchange.
    assert end_user.callback(end_user.consent(authorize)).status_code == 303
    assert len(_links(configured_app)) == 1
