"""Two-factor sign-in: enrolment with a QR code, codes that work once, recovery codes,
the enrolment guard, an operator's reset, bad codes, and seeds never stored or shown twice."""

from __future__ import annotations

import re

import pyotp
import pytest
import sqlalchemy as sa
from sqlalchemy import select

from tests.factories import make_totp, make_user
from tests.helpers import AuthActions, csrf_from, totp_code
from whoopadmin.audit import AuditEvent
from whoopadmin.extensions import db
from whoopadmin.mfa.models import RecoveryCode, TotpDevice
from whoopadmin.sessions.models import StaffSession

SECRET_RE = re.compile(r'data-testid="totp-secret">([A-Z2-7 ]+)<')
CODES_RE = re.compile(r"<li>([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})</li>")


def _actions(app):
    with app.app_context():
        return db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()


def enrol(client) -> tuple[str, list[str], str]:
    """Enrol through the pages; return the secret, the recovery codes and the setup page."""
    page = client.get("/account/mfa/setup")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    secret = SECRET_RE.search(html).group(1).replace(" ", "")
    assert 'data-testid="qr"' in html and "<svg" in html
    done = client.post(
        "/account/mfa/setup", data={"code": totp_code(secret), "csrf_token": csrf_from(html)}
    )
    assert done.status_code == 200, done.data
    assert done.headers["Cache-Control"] == "no-store"
    codes = CODES_RE.findall(done.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    return secret, codes, html


def test_operator_must_enrol_before_any_other_page(mfa_app):
    """CTFd's needs_setup guard: password accepted, then set-up first, whatever is asked."""
    with mfa_app.app_context():
        make_user("operator")
    client = mfa_app.test_client()
    assert AuthActions(client).login().headers["Location"] == "/"
    for path in ("/", "/staff", "/setup", "/account/sessions", "/api-keys"):
        response = client.get(path)
        assert response.headers.get("Location") == "/account/mfa/setup", path
    secret, codes, _ = enrol(client)
    assert client.get("/").status_code == 200
    assert "staff.mfa_enrol" in _actions(mfa_app)
    with mfa_app.app_context():
        row = db.session.scalar(select(StaffSession))
        assert row.second_factor == "totp"


def test_support_need_not_enrol(mfa_app):
    with mfa_app.app_context():
        make_user("support")
    client = mfa_app.test_client()
    AuthActions(client).login("support@example.com", "support-password")
    assert client.get("/").status_code == 200


def test_sign_in_asks_for_the_code_and_a_code_works_once(mfa_app, mfa_operator):
    _, secret = mfa_operator
    client = mfa_app.test_client()
    auth = AuthActions(client)
    assert auth.login().headers["Location"] == "/login/verify"
    assert client.get("/").headers["Location"].startswith("/login")  # not signed in yet
    code = totp_code(secret)
    assert auth.verify(code).headers["Location"] == "/"
    assert client.get("/").status_code == 200

    # The attack: the same code, seen over a shoulder, from another browser within its window.
    thief = mfa_app.test_client()
    assert AuthActions(thief).login().headers["Location"] == "/login/verify"
    replay = AuthActions(thief).verify(code)
    assert replay.status_code == 401
    assert b"used already" in replay.data
    assert thief.get("/").headers["Location"].startswith("/login")
    # An older step's code is refused too once a later one was used.
    assert AuthActions(thief).verify(totp_code(secret, -1)).status_code == 401
    # The next step's code (clock skew allows it) still works, once.
    assert AuthActions(thief).verify(totp_code(secret, 1)).headers["Location"] == "/"


def test_recovery_code_signs_in_once(mfa_app):
    with mfa_app.app_context():
        make_user("operator")
    client = mfa_app.test_client()
    AuthActions(client).login()
    _, codes, _ = enrol(client)
    AuthActions(client).logout()

    other = mfa_app.test_client()
    auth = AuthActions(other)
    auth.login()
    typed = codes[3].upper().replace("-", " ")  # spaces, capitals: still the code
    response = auth.verify(typed)
    assert response.headers["Location"] == "/"
    assert "9 are left" in other.get("/").get_data(as_text=True)
    auth.logout()
    auth.login()
    reused = auth.verify(codes[3])
    assert reused.status_code == 401
    assert other.get("/").headers["Location"].startswith("/login")
    actions = _actions(mfa_app)
    assert "staff.mfa_recovery_used" in actions and "staff.mfa_failed" in actions


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("", 400),
        ("12345", 401),
        ("1234567", 401),
        ("12a456", 401),
        ("١٢٣٤٥٦", 401),  # Arabic-Indic digits: refused, not read as 123456
        ("1" * 10_000, 401),
        ("<script>", 401),
        ("\u200b123456", 401),
    ],
)
def test_bad_codes_get_a_clear_answer(mfa_app, mfa_operator, code, status):
    client = mfa_app.test_client()
    auth = AuthActions(client)
    auth.login()
    response = auth.verify(code)
    assert response.status_code == status
    text = response.get_data(as_text=True)
    assert "6-digit code" in text or "not right" in text or "Enter a code" in text
    assert client.get("/").headers["Location"].startswith("/login")


def test_full_width_and_spaced_digits_are_read(mfa_app, mfa_operator):
    _, secret = mfa_operator
    code = totp_code(secret)
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in code)  # "１２３…"
    client = mfa_app.test_client()
    auth = AuthActions(client)
    auth.login()
    assert auth.verify(f" {full_width[:3]} {full_width[3:]} ").headers["Location"] == "/"


def test_verify_without_a_password_first_goes_back_to_sign_in(mfa_app, mfa_operator):
    client = mfa_app.test_client()
    page = client.get("/login/verify")
    assert page.headers["Location"] == "/login"
    token = csrf_from(client.get("/login").get_data(as_text=True))
    forged = client.post("/login/verify", data={"code": "123456", "csrf_token": token})
    assert forged.headers["Location"] == "/login"


def test_failed_confirmation_shows_no_secret_again(mfa_app):
    with mfa_app.app_context():
        make_user("operator")
    client = mfa_app.test_client()
    AuthActions(client).login()
    page = client.get("/account/mfa/setup").get_data(as_text=True)
    secret = SECRET_RE.search(page).group(1).replace(" ", "")
    wrong = client.post(
        "/account/mfa/setup", data={"code": "000000", "csrf_token": csrf_from(page)}
    )
    assert wrong.status_code == 400
    html = wrong.get_data(as_text=True)
    assert SECRET_RE.search(html) is None and 'data-testid="qr"' not in html
    assert secret not in html.replace(" ", "")
    # The app's next code for the key already scanned still confirms it.
    ok = client.post(
        "/account/mfa/setup", data={"code": totp_code(secret), "csrf_token": csrf_from(html)}
    )
    assert len(CODES_RE.findall(ok.get_data(as_text=True))) == 10
    # Once enrolled, the key is on no page.
    for path in ("/account/mfa", "/account/mfa/setup", "/"):
        body = client.get(path, follow_redirects=True).get_data(as_text=True)
        assert secret not in body.replace(" ", "")


def test_enrolment_ends_the_other_sessions(mfa_app):
    with mfa_app.app_context():
        make_user("operator")
    here, elsewhere = mfa_app.test_client(), mfa_app.test_client()
    AuthActions(here).login()
    AuthActions(elsewhere).login()
    enrol(here)
    assert here.get("/").status_code == 200
    assert elsewhere.get("/").headers["Location"].startswith("/login")


def test_seeds_and_recovery_codes_are_not_stored_in_plain_text(mfa_app):
    with mfa_app.app_context():
        make_user("operator")
    client = mfa_app.test_client()
    AuthActions(client).login()
    secret, codes, _ = enrol(client)
    with mfa_app.app_context(), db.engine.connect() as conn:
        dump = ""
        for table in db.metadata.sorted_tables:
            dump += repr(conn.execute(sa.select(table)).all())
        assert db.session.scalar(select(TotpDevice)).secret == secret  # it does open
    assert secret not in dump and secret.lower() not in dump
    for code in codes:
        assert code not in dump and code.replace("-", "") not in dump
    with mfa_app.app_context():
        assert db.session.scalar(select(db.func.count(RecoveryCode.id))) == 10


def test_regenerate_recovery_codes(mfa_app):
    with mfa_app.app_context():
        make_user("operator")
    client = mfa_app.test_client()
    AuthActions(client).login()
    secret, old, _ = enrol(client)
    page = client.get("/account/mfa").get_data(as_text=True)
    assert "Recovery codes left: <strong>10</strong>" in page
    wrong = client.post(
        "/account/mfa/recovery-codes", data={"code": "000000", "csrf_token": csrf_from(page)}
    )
    assert wrong.headers["Location"] == "/account/mfa"
    response = client.post(
        "/account/mfa/recovery-codes",
        data={"code": totp_code(secret, 1), "csrf_token": csrf_from(page)},
    )
    new = CODES_RE.findall(response.get_data(as_text=True))
    assert len(new) == 10 and not set(new) & set(old)
    AuthActions(client).logout()
    auth = AuthActions(client)
    auth.login()
    assert auth.verify(old[0]).status_code == 401
    assert auth.verify(new[0]).headers["Location"] == "/"


def test_operator_resets_someone_elses_second_factor(mfa_app, mfa_operator):
    operator_id, secret = mfa_operator
    with mfa_app.app_context():
        other = make_user("operator", email="second@example.com")
        other_secret, other_id = make_totp(other), other.id
    victim = mfa_app.test_client()
    AuthActions(victim).login("second@example.com", "operator-password")
    AuthActions(victim).verify(totp_code(other_secret))
    assert victim.get("/").status_code == 200

    admin = mfa_app.test_client()
    AuthActions(admin).login()
    AuthActions(admin).verify(totp_code(secret))
    page = admin.get(f"/staff/{other_id}").get_data(as_text=True)
    assert "two-factor on" in page
    # CSRF first, then the real thing.
    assert admin.post(f"/staff/{other_id}/mfa/reset").status_code == 400
    response = admin.post(f"/staff/{other_id}/mfa/reset", data={"csrf_token": csrf_from(page)})
    assert response.headers["Location"] == f"/staff/{other_id}"
    assert victim.get("/").headers["Location"].startswith("/login")  # signed out
    with mfa_app.app_context():
        assert db.session.scalar(select(TotpDevice).where(TotpDevice.user_id == other_id)) is None
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "staff.mfa_reset"))
        assert event.actor_id == operator_id and event.target_id == str(other_id)
    # Their next sign-in goes to enrolment, not the code step.
    again = mfa_app.test_client()
    assert (
        AuthActions(again).login("second@example.com", "operator-password").headers["Location"]
        == "/"
    )
    assert again.get("/").headers["Location"] == "/account/mfa/setup"


def test_support_cannot_reset_a_second_factor(mfa_app, mfa_operator):
    with mfa_app.app_context():
        make_user("support")
    client = mfa_app.test_client()
    AuthActions(client).login("support@example.com", "support-password")
    token = csrf_from(client.get("/").get_data(as_text=True))
    assert client.post("/staff/1/mfa/reset", data={"csrf_token": token}).status_code == 403
    with mfa_app.app_context():
        assert db.session.scalar(select(TotpDevice)) is not None


def test_require_mfa_off_lets_operators_in_with_a_password(app):
    assert app.config["REQUIRE_MFA"] is False
    with app.app_context():
        make_user("operator")
    client = app.test_client()
    AuthActions(client).login()
    assert client.get("/staff").status_code == 200


def test_require_mfa_is_on_by_default_and_reads_the_environment(make_app):
    from whoopadmin.config import DEFAULTS, ConfigError

    assert DEFAULTS["REQUIRE_MFA"] is True
    # What the environment gives: strings, in any case.
    assert make_app(REQUIRE_MFA="False").config["REQUIRE_MFA"] is False
    assert make_app(REQUIRE_MFA="false").config["REQUIRE_MFA"] is False
    assert make_app(REQUIRE_MFA="yes").config["REQUIRE_MFA"] is True
    with pytest.raises(ConfigError, match="true or false"):
        make_app(REQUIRE_MFA="maybe")


def test_provisioning_uri_names_the_account(mfa_app):
    with mfa_app.app_context():
        make_user("operator")
    client = mfa_app.test_client()
    AuthActions(client).login()
    html = client.get("/account/mfa/setup").get_data(as_text=True)
    secret = SECRET_RE.search(html).group(1).replace(" ", "")
    uri = pyotp.TOTP(secret).provisioning_uri(name="operator@example.com", issuer_name="whoopadmin")
    assert pyotp.parse_uri(uri).secret == secret


def test_key_rotation_reseals_totp_seeds(make_app, encryption_key):
    from tests.helpers import reset_schema
    from whoopadmin.crypto import generate_key

    old = make_app()
    reset_schema(old)
    with old.app_context():
        secret = make_totp(make_user("operator"))
        before = db.session.scalar(select(TotpDevice)).secret_sealed
    new_key = generate_key()
    app = make_app(ENCRYPTION_KEYS=f"{new_key},{encryption_key}")
    result = app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code == 0 and "Re-encrypted 1 secrets" in result.output, result.output
    only_new = make_app(ENCRYPTION_KEYS=new_key)
    with only_new.app_context():
        device = db.session.scalar(select(TotpDevice))
        assert device.secret_sealed != before and device.secret == secret
