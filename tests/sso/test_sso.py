"""Single sign-on against a real OpenID provider on loopback (oidc-provider): verified
e-mails only, allowed domains, PKCE + state + nonce, the second factor, local passwords off."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import select

from tests.factories import make_totp, make_user
from tests.helpers import AuthActions, totp_code
from tests.sso.conftest import ADMIN, CLIENT_SECRET, Browser
from whoopadmin.audit import AuditEvent
from whoopadmin.auth.models import StaffUser
from whoopadmin.extensions import db
from whoopadmin.sessions.models import StaffSession


@pytest.fixture
def staff(sso_app):
    with sso_app.app_context():
        make_user("operator")
        make_user("support")


def _sessions(app):
    with app.app_context():
        return [
            (s.user.email, s.method, s.second_factor)
            for s in db.session.scalars(select(StaffSession).order_by(StaffSession.id))
        ]


def _refusals(app):
    with app.app_context():
        return [
            e.details["reason"]
            for e in db.session.scalars(
                select(AuditEvent).where(AuditEvent.action == "staff.sso_refused")
            )
        ]


def test_login_page_has_the_button(sso_app, browser):
    page = browser.get("/login").get_data(as_text=True)
    assert "Sign in with Acme ID" in page
    assert 'name="password"' in page  # local passwords still on


def test_authorization_request_uses_pkce_state_and_nonce(sso_app, browser, oidc_provider):
    url = browser.start()
    assert url.startswith(f"{oidc_provider}/auth?")
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) >= 43
    assert len(query["state"][0]) >= 20 and len(query["nonce"][0]) >= 20
    assert query["scope"] == ["openid email profile"]
    assert query["redirect_uri"] == [f"{ADMIN}/login/sso/callback"]


def test_verified_email_signs_in_to_its_account(sso_app, browser, staff):
    response = browser.sso("operator", next_path="/staff")
    assert response.headers["Location"] == "/staff"
    assert browser.get("/staff").status_code == 200
    assert _sessions(sso_app) == [("operator@example.com", "sso", None)]
    # Signing out ends that session like any other.
    AuthActions(browser.client).logout()
    assert browser.get("/").status_code == 302


def test_email_is_matched_as_sign_in_normalises_it(sso_app, browser, staff):
    assert browser.sso("shouty").headers["Location"] == "/"
    assert _sessions(sso_app)[0][0] == "operator@example.com"


@pytest.mark.parametrize("account", ["unverified", "stringy"])
def test_unverified_email_is_refused(sso_app, browser, staff, account):
    response = browser.sso(account)
    assert response.headers["Location"] == "/login"
    assert "has not verified" in browser.get("/login").get_data(as_text=True)
    assert browser.get("/").headers["Location"].startswith("/login")
    assert _sessions(sso_app) == [] and _refusals(sso_app) == ["unverified"]


def test_unknown_domain_is_refused(sso_app, browser, staff):
    response = browser.sso("stranger")
    assert response.headers["Location"] == "/login"
    assert "no staff account" in browser.get("/login").get_data(as_text=True)
    with sso_app.app_context():
        assert (
            db.session.scalar(select(StaffUser).where(StaffUser.email.like("%elsewhere%"))) is None
        )
    assert _refusals(sso_app) == ["unknown_account"]


def test_allowed_domain_gets_an_account_with_the_default_role(sso_app, browser, staff):
    assert sso_app.config["OIDC_DEFAULT_ROLE"] == "support"
    assert browser.sso("newcomer").headers["Location"] == "/"
    assert browser.get("/").status_code == 200
    assert browser.get("/staff").status_code == 403  # support, not operator
    with sso_app.app_context():
        email = "new.person@acme-health.com"
        user = db.session.scalar(select(StaffUser).where(StaffUser.email == email))
        assert user.role == "support" and user.active
        created = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "staff.create"))
        assert created.actor == "sso"


def test_default_role_can_be_operator(make_sso_app):
    app = make_sso_app(OIDC_DEFAULT_ROLE="operator")
    browser = Browser(app)
    try:
        browser.sso("newcomer")
        assert browser.get("/staff").status_code == 200
    finally:
        browser.close()


def test_deactivated_account_stays_out(sso_app, browser):
    with sso_app.app_context():
        make_user("operator", active=False)
    assert browser.sso("operator").headers["Location"] == "/login"
    assert "deactivated" in browser.get("/login").get_data(as_text=True)
    assert _sessions(sso_app) == [] and _refusals(sso_app) == ["deactivated"]


def test_tampered_state_is_refused(sso_app, browser, staff):
    location = browser.sign_in_at_provider(browser.start(), "operator")
    parts = urlsplit(location)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["state"] = query["state"][:-2] + "xx"
    response = browser.client.get(f"{parts.path}?{urlencode(query)}", base_url=ADMIN)
    assert response.status_code == 400
    assert b"did not complete" in response.data
    assert _sessions(sso_app) == []


def test_callback_for_another_browser_is_refused(sso_app, browser, staff):
    """Login CSRF: the attacker's own callback URL, opened in the victim's browser."""
    attacker = Browser(sso_app)
    try:
        location = attacker.sign_in_at_provider(attacker.start(), "newcomer")
    finally:
        attacker.close()
    browser.start()  # the victim has a sign-in of their own under way
    assert browser.back(location).status_code == 400
    assert _sessions(sso_app) == []


def test_tampered_nonce_is_refused(sso_app, browser, staff):
    url = browser.start()
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["nonce"] = "a-nonce-the-attacker-chose-0123456789"
    location = browser.sign_in_at_provider(
        parts._replace(query=urlencode(query)).geturl(), "operator"
    )
    response = browser.back(location)
    assert response.status_code == 400
    assert _sessions(sso_app) == []


def test_replayed_callback_is_refused(sso_app, browser, staff):
    location = browser.sign_in_at_provider(browser.start(), "operator")
    assert browser.back(location).headers["Location"] == "/"
    AuthActions(browser.client).logout()
    assert browser.back(location).status_code == 400  # the state was used up
    assert [s for s in _sessions(sso_app)] == []


@pytest.mark.parametrize(
    "query",
    [
        "",
        "code=x",
        "state=x",
        "code=abc&state=def",
        "error=access_denied&error_description=nope",
        "code=%00&state=%ff%fe",
        "code=" + "a" * 5000 + "&state=" + "b" * 5000,
        "code[]=1&state[]=2",
    ],
)
def test_junk_callbacks_are_4xx(sso_app, browser, staff, query):
    browser.start()
    response = browser.get(f"/login/sso/callback?{query}")
    assert 300 <= response.status_code < 500, response.status_code
    assert browser.get("/").headers["Location"].startswith("/login")


def test_provider_refusal_is_a_message(sso_app, browser, staff):
    location = browser.sign_in_at_provider(browser.start(), "nobody-at-all")
    response = browser.back(location)
    assert response.headers["Location"] == "/login"
    assert "cancelled or refused" in browser.get("/login").get_data(as_text=True)


def test_unreachable_provider_is_a_503(make_sso_app):
    app = make_sso_app(OIDC_ISSUER="http://127.0.0.1:9")
    response = app.test_client().get("/login/sso", base_url=ADMIN)
    assert response.status_code == 503
    assert b"cannot be reached" in response.data


def test_enrolled_account_still_gives_its_code(make_sso_app):
    app = make_sso_app(REQUIRE_MFA=True)
    with app.app_context():
        secret = make_totp(make_user("operator"))
    browser = Browser(app)
    try:
        assert browser.sso("operator").headers["Location"] == "/login/verify"
        assert browser.get("/").headers["Location"].startswith("/login")
        token = AuthActions(browser.client).csrf("/login/verify")
        done = browser.client.post(
            "/login/verify", data={"code": totp_code(secret), "csrf_token": token}
        )
        assert done.headers["Location"] == "/"
        assert _sessions(app) == [("operator@example.com", "sso", "totp")]
    finally:
        browser.close()


def test_provider_mfa_counts_as_the_second_factor(make_sso_app):
    app = make_sso_app(REQUIRE_MFA=True)
    with app.app_context():
        make_totp(make_user("operator"))
    browser = Browser(app)
    try:
        assert browser.sso("operator", amr="pwd,otp,mfa").headers["Location"] == "/"
        assert browser.get("/staff").status_code == 200
        assert _sessions(app) == [("operator@example.com", "sso", "idp")]
    finally:
        browser.close()


def test_operator_without_factor_enrols_after_sso(make_sso_app):
    app = make_sso_app(REQUIRE_MFA=True)
    with app.app_context():
        make_user("operator")
    browser = Browser(app)
    try:
        assert browser.sso("operator").headers["Location"] == "/"
        assert browser.get("/").headers["Location"] == "/account/mfa/setup"
    finally:
        browser.close()


def _csrf_token(app, client) -> str:
    """A valid CSRF token for ``client``'s session, made as Flask-WTF makes one (the page
    that would show one has no form any more)."""
    from itsdangerous import URLSafeTimedSerializer

    raw = "a" * 40
    with client.session_transaction() as session:
        session["csrf_token"] = raw
    return URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token").dumps(raw)


def test_local_passwords_off(make_sso_app):
    app = make_sso_app(LOCAL_PASSWORDS="false")
    with app.app_context():
        make_user("operator")
    client = app.test_client()
    page = client.get("/login", base_url=ADMIN).get_data(as_text=True)
    assert "Sign in with Acme ID" in page
    assert 'name="password"' not in page
    # The form is gone, and a password posted anyway is refused, even the right one.
    token = _csrf_token(app, client)
    refused = client.post(
        "/login",
        data={
            "email": "operator@example.com",
            "password": "operator-password",
            "csrf_token": token,
        },
        base_url=ADMIN,
    )
    assert refused.status_code == 403
    assert client.get("/", base_url=ADMIN).headers["Location"].startswith("/login")
    assert client.get("/account/password", base_url=ADMIN).status_code in (302, 404)
    browser = Browser(app)
    try:
        assert browser.sso("operator").headers["Location"] == "/"
        assert browser.get("/account/password").status_code == 404
    finally:
        browser.close()


def test_local_passwords_off_needs_sso(make_app):
    from whoopadmin.config import ConfigError

    with pytest.raises(ConfigError, match="no way to sign in"):
        make_app(LOCAL_PASSWORDS=False)
    with pytest.raises(ConfigError, match="together"):
        make_app(OIDC_ISSUER="http://127.0.0.1:1")


def test_client_secret_is_in_no_page_or_log(sso_app, browser, staff, caplog):
    caplog.set_level("DEBUG")
    pages = [browser.get("/login").get_data(as_text=True)]
    browser.sso("operator")
    for path in ("/", "/staff", "/account/sessions", "/audit"):
        pages.append(browser.get(path).get_data(as_text=True))
    assert CLIENT_SECRET not in "".join(pages)
    assert CLIENT_SECRET not in caplog.text
