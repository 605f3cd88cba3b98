"""Signing in and out, rate limits, CSRF, roles and the audit trail."""

import pytest
from sqlalchemy import select

from tests.factories import make_user
from tests.helpers import csrf_from
from whoopadmin.audit import AuditEvent
from whoopadmin.extensions import db


@pytest.fixture
def staff(app):
    with app.app_context():
        make_user("operator")
        make_user("support")


def test_login_page_renders(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert b"Sign in" in response.data


def test_dashboard_requires_login(client):
    response = client.get("/")
    assert response.headers["Location"].startswith("/login?next=")


def test_login_and_logout(client, auth, staff, app):
    response = auth.login()
    assert response.headers["Location"] == "/"
    page = client.get("/").get_data(as_text=True)
    assert "operator@example.com" in page
    response = auth.logout()
    assert response.headers["Location"] == "/login"
    assert client.get("/").headers["Location"].startswith("/login")
    with app.app_context():
        actions = db.session.scalars(select(AuditEvent.action)).all()
    assert "staff.login" in actions


def test_login_redirects_only_to_local_paths(client, auth, staff):
    token = auth.csrf()
    data = {"email": "operator@example.com", "password": "operator-password", "csrf_token": token}
    response = client.post("/login?next=https://evil.example/", data=data)
    assert response.headers["Location"] == "/"
    auth.logout()
    token = auth.csrf()
    data["csrf_token"] = token
    response = client.post("/login?next=//evil.example/x", data=data)
    assert response.headers["Location"] == "/"
    auth.logout()
    data["csrf_token"] = auth.csrf()
    response = client.post("/login?next=/staff", data=data)
    assert response.headers["Location"] == "/staff"


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("operator@example.com", "wrong-password"),
        ("nobody@example.com", "operator-password"),
        ("not-an-email", "operator-password"),
    ],
)
def test_wrong_credentials(client, auth, staff, email, password):
    response = auth.login(email, password)
    assert response.status_code in (400, 401)
    assert "Location" not in response.headers
    assert client.get("/").headers["Location"].startswith("/login")


def test_wrong_password_message(client, auth, staff):
    response = auth.login("operator@example.com", "wrong-password")
    assert response.status_code == 401
    assert b"Wrong e-mail address or password." in response.data


def test_email_is_case_insensitive(auth, staff):
    response = auth.login("Operator@Example.COM", "operator-password")
    assert response.headers["Location"] == "/"


def test_deactivated_user_cannot_sign_in(client, auth, app):
    with app.app_context():
        make_user("support", active=False)
    response = auth.login("support@example.com", "support-password")
    assert response.status_code == 403
    assert b"deactivated" in response.data
    assert client.get("/").headers["Location"].startswith("/login")


def test_missing_csrf_token_is_400(client, staff):
    response = client.post(
        "/login", data={"email": "operator@example.com", "password": "operator-password"}
    )
    assert response.status_code == 400
    assert b"form had expired" in response.data
    assert client.get("/").headers["Location"].startswith("/login")


def test_logout_needs_csrf(client, auth, staff):
    auth.login()
    response = client.post("/logout")
    assert response.status_code == 400
    assert client.get("/").status_code == 200  # still signed in


def test_login_rate_limit(make_app, redis_url):
    from tests.helpers import reset_schema

    app = make_app(LOGIN_RATE_LIMIT="3 per minute")
    reset_schema(app)
    with app.app_context():
        make_user("operator")
    client = app.test_client()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    data = {"email": "operator@example.com", "password": "nope-nope-nope", "csrf_token": token}
    codes = [client.post("/login", data=data).status_code for _ in range(3)]
    assert codes == [401, 401, 401]
    blocked = client.post("/login", data=data)
    assert blocked.status_code == 429
    assert b"Too many attempts" in blocked.data
    assert int(blocked.headers["Retry-After"]) > 0
    # Even the right password is refused until the window passes.
    data["password"] = "operator-password"
    assert client.post("/login", data=data).status_code == 429
    # Viewing the form is never limited.
    assert client.get("/login").status_code == 200


def test_login_rate_limit_per_account_across_addresses(make_app):
    from tests.helpers import reset_schema

    app = make_app(LOGIN_ACCOUNT_LIMIT="3 per hour")
    reset_schema(app)
    with app.app_context():
        make_user("operator")
    codes = []
    for n in range(4):
        client = app.test_client()
        env = {"REMOTE_ADDR": f"127.0.0.{n + 10}"}
        token = csrf_from(client.get("/login", environ_base=env).get_data(as_text=True))
        data = {"email": "operator@example.com", "password": "bad-password!", "csrf_token": token}
        codes.append(client.post("/login", data=data, environ_base=env).status_code)
    assert codes == [401, 401, 401, 429]


def test_support_gets_403_on_operator_pages(client, auth, staff):
    auth.login("support@example.com", "support-password")
    assert client.get("/").status_code == 200
    for path in ("/staff", "/staff/new", "/staff/1"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert b'data-testid="error-page"' in response.data
    token = csrf_from(client.get("/").get_data(as_text=True))
    response = client.post("/staff/1/deactivate", data={"csrf_token": token})
    assert response.status_code == 403


def test_support_nav_hides_operator_links(client, auth, staff):
    auth.login("support@example.com", "support-password")
    page = client.get("/").get_data(as_text=True)
    assert 'href="/staff"' not in page
    auth.logout()
    auth.login()
    assert 'href="/staff"' in client.get("/").get_data(as_text=True)


def test_session_protection_and_cookie_flags(client, auth, staff, app):
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    response = auth.login()
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
