"""Bad input at scale on the sign-in steps: hypothesis throws random and half-valid text at
the password form, the code step, set-password links and the SSO callback; no answer is a
5xx, nobody is signed in, and no secret reaches the log."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.security import generate_password_hash

from tests.factories import make_totp, make_user
from tests.helpers import AuthActions, csrf_from, reset_schema, totp_code

TEXT = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        ["", " ", "\t\n", "１２３４５６", "١٢٣٤٥٦", "12 34 56", "operator@example.com"]
    ),
    st.text(alphabet="0123456789 -", max_size=20),
    st.text(min_size=1000, max_size=3000),
)
FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def world(make_app):
    app = make_app(
        REQUIRE_MFA=True,
        LOGIN_RATE_LIMIT="100000 per minute",
        LOGIN_ACCOUNT_LIMIT="100000 per hour",
        MFA_CODE_LIMIT="100000 per hour",
    )
    reset_schema(app)
    with app.app_context():
        user = make_user("operator")
        # A cheap hash for the account that signs in every example (the dummy hash for
        # unknown e-mails stays the real cost).
        user.password_hash = generate_password_hash("operator-password", "pbkdf2:sha256:1000")
        secret = make_totp(user)
    return app, secret


def test_sign_in_steps_fuzz(world, caplog):
    app, secret = world
    caplog.set_level("DEBUG")
    client = app.test_client()
    auth = AuthActions(client)
    token = auth.csrf()

    @FUZZ
    @given(email=TEXT, password=TEXT, code=TEXT, link=TEXT)
    def run(email, password, code, link):
        data = {"email": email, "password": password, "csrf_token": token}
        assert client.post("/login", data=data).status_code in (400, 401, 403)
        assert auth.login().headers["Location"] == "/login/verify"
        answer = client.post("/login/verify", data={"code": code, "csrf_token": token})
        assert answer.status_code in (400, 401), answer.status_code
        dead = client.get("/set-password/" + link.replace("/", "%2F").replace("?", "%3F"))
        assert dead.status_code in (308, 400, 404, 405), dead.status_code
        assert client.get("/").headers["Location"].startswith("/login")

    run()
    assert secret not in caplog.text
    # The right code still signs in after all that.
    assert auth.verify(totp_code(secret)).headers["Location"] == "/"


def test_code_step_without_csrf_or_with_junk_methods(world):
    app, _ = world
    client = app.test_client()
    AuthActions(client).login()
    assert client.post("/login/verify", data={"code": "123456"}).status_code == 400
    assert client.put("/login/verify").status_code == 405
    page = client.get("/login/verify").get_data(as_text=True)
    junk = client.post("/login/verify", data={"code": ["1", "2"], "csrf_token": csrf_from(page)})
    assert junk.status_code in (400, 401)
