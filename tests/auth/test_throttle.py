"""Sign-in throttling an attacker cannot sidestep: normalised keys, 100 failures an hour per
account, no lock-out of a second-factor account from elsewhere, equal timing, an audit trail."""

from __future__ import annotations

import statistics
import time

import pytest
from sqlalchemy import select

from tests.factories import make_totp, make_user
from tests.helpers import AuthActions, reset_schema, totp_code
from whoopadmin.audit import AuditEvent
from whoopadmin.extensions import db

FULLWIDTH = "operator@\uff45xample.com"  # a full-width "e": the same account once normalised


def _app(make_app, **config):
    app = make_app(**config)
    reset_schema(app)
    return app


def attempt(app, email, password, address):
    """One sign-in from ``address`` with a fresh browser; return the response."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return AuthActions(client).login(email, password)


def _audit(app, action=None):
    with app.app_context():
        query = select(AuditEvent).order_by(AuditEvent.id)
        if action:
            query = query.where(AuditEvent.action == action)
        rows = db.session.scalars(query).all()
        return [(row.action, row.actor, dict(row.details)) for row in rows]


def test_unicode_spelling_shares_the_account_bucket(make_app):
    """The attack: the plain address is throttled, so try the full-width spelling."""
    app = _app(make_app, LOGIN_RATE_LIMIT="3 per minute", LOGIN_ACCOUNT_LIMIT="3 per hour")
    with app.app_context():
        make_user("operator")
    for n in range(3):
        assert (
            attempt(app, "operator@example.com", "wrong-guess-1", f"10.0.0.{n}").status_code == 401
        )
    assert attempt(app, "operator@example.com", "operator-password", "10.0.1.1").status_code == 429
    sneaky = attempt(app, FULLWIDTH, "operator-password", "10.0.1.2")
    assert sneaky.status_code == 429
    assert "Location" not in sneaky.headers
    assert attempt(app, "OPERATOR@EXAMPLE.COM", "operator-password", "10.0.1.3").status_code == 429


def test_full_width_spelling_signs_in_when_not_throttled(make_app):
    app = _app(make_app)
    with app.app_context():
        make_user("operator")
    assert attempt(app, FULLWIDTH, "operator-password", "10.0.0.1").headers["Location"] == "/"


def test_at_most_100_failures_an_hour_per_account(make_app):
    """ASVS 2.2.1 with the shipped limits: spread over addresses, failure 101 is refused."""
    from werkzeug.security import generate_password_hash

    app = _app(make_app)
    assert app.config["LOGIN_ACCOUNT_LIMIT"] == "100 per hour"
    with app.app_context():
        # A cheap hash keeps 100 attempts quick; the throttle does not care how it is hashed.
        cheap = generate_password_hash("support-password", method="pbkdf2:sha256:1000")
        make_user("support").password_hash = cheap
        db.session.commit()
    codes = []
    for block in range(10):  # ten addresses, ten attempts each (the per-address limit is 10)
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"10.1.0.{block}"
        token = AuthActions(client).csrf()
        for n in range(10):
            data = {"email": "support@example.com", "password": f"guess-{n}", "csrf_token": token}
            codes.append(client.post("/login", data=data).status_code)
    assert codes == [401] * 100
    assert attempt(app, "support@example.com", "support-password", "10.2.0.1").status_code == 429


def test_attacker_cannot_lock_out_a_second_factor_account(make_app):
    """A full account bucket refuses the addresses that failed, not the real operator."""
    app = _app(make_app, LOGIN_ACCOUNT_LIMIT="3 per hour", REQUIRE_MFA=True)
    with app.app_context():
        secret = make_totp(make_user("operator"))
    attacker = "203.0.113.66"
    for n in range(3):
        assert attempt(app, "operator@example.com", f"guess-{n}", attacker).status_code == 401
    assert attempt(app, "operator@example.com", "guess-3", attacker).status_code == 429
    # Even the right password is refused from the attacker's address...
    assert attempt(app, "operator@example.com", "operator-password", attacker).status_code == 429
    # ...while the operator, elsewhere, signs in (and still needs the code).
    operator = app.test_client()
    operator.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    auth = AuthActions(operator)
    assert auth.login().headers["Location"] == "/login/verify"
    assert auth.verify(totp_code(secret)).headers["Location"] == "/"
    assert operator.get("/").status_code == 200


def test_account_without_second_factor_is_refused_from_everywhere(make_app):
    """The other side of the design (README): a password-only account's full bucket
    refuses every address for the rest of the hour."""
    app = _app(make_app, LOGIN_ACCOUNT_LIMIT="3 per hour")
    with app.app_context():
        make_user("support")
    for n in range(3):
        attempt(app, "support@example.com", f"guess-{n}", "203.0.113.66")
    assert (
        attempt(app, "support@example.com", "support-password", "198.51.100.7").status_code == 429
    )


def test_throttled_answer_says_when(make_app):
    app = _app(make_app, LOGIN_ACCOUNT_LIMIT="1 per hour")
    with app.app_context():
        make_user("support")
    attempt(app, "support@example.com", "guess-1", "10.0.0.1")
    refused = attempt(app, "support@example.com", "guess-2", "10.0.0.1")
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert b"Too many failed attempts" in refused.data


def test_failures_and_throttle_hits_are_audited_without_the_password(make_app):
    app = _app(make_app, LOGIN_RATE_LIMIT="4 per minute", LOGIN_ACCOUNT_LIMIT="2 per hour")
    with app.app_context():
        make_user("operator")
    attempt(app, "Operator@Example.com", "secret-guess-one", "10.0.0.1")
    attempt(app, "nobody@example.com", "secret-guess-two", "10.0.0.1")
    # Someone types their password into the e-mail box: it must not land in the log.
    attempt(app, "my-password-typed-here", "secret-guess-three", "10.0.0.1")
    attempt(app, "operator@example.com", "secret-guess-four", "10.0.0.2")
    for _ in range(3):  # throttled: audited once a minute per bucket, not once per request
        attempt(app, FULLWIDTH, "secret-guess-five", "10.0.0.3")
    for _ in range(3):  # the per-address limit (4 a minute) from 10.0.0.1
        attempt(app, "someone@example.com", "secret-guess-six", "10.0.0.1")

    failed = _audit(app, "staff.login_failed")
    assert [(d["email"], d["address"], d["reason"]) for _, _, d in failed] == [
        ("operator@example.com", "10.0.0.1", "wrong_password"),
        ("nobody@example.com", "10.0.0.1", "unknown_account"),
        (None, "10.0.0.1", "unknown_account"),
        ("operator@example.com", "10.0.0.2", "wrong_password"),
        ("someone@example.com", "10.0.0.1", "unknown_account"),  # the 4th from 10.0.0.1
    ]
    throttled = [d for _, _, d in _audit(app, "staff.login_throttled")]
    assert [(d.get("email"), d["limit"]) for d in throttled] == [
        ("operator@example.com", "account"),
        (None, "address"),
    ]
    assert throttled[1]["address"] == "10.0.0.1"
    everything = repr(_audit(app))
    assert "secret-guess" not in everything and "my-password-typed-here" not in everything


def test_unknown_and_known_emails_take_the_same_time(make_app):
    """Ratio of medians over interleaved attempts, tolerant of a loaded machine."""
    app = _app(make_app, LOGIN_RATE_LIMIT="1000 per minute", LOGIN_ACCOUNT_LIMIT="1000 per hour")
    with app.app_context():
        make_user("operator")
    client = app.test_client()
    auth = AuthActions(client)
    token = auth.csrf()

    def timed(email):
        data = {"email": email, "password": "not-the-password", "csrf_token": token}
        start = time.perf_counter()
        assert client.post("/login", data=data).status_code == 401
        return time.perf_counter() - start

    known, unknown = [], []
    for n in range(11):
        known.append(timed("operator@example.com"))
        unknown.append(timed(f"nobody-{n}@example.com"))
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 < ratio < 2, (ratio, statistics.median(known), statistics.median(unknown))


@pytest.mark.parametrize("code", ["000000", "12 34 56", "１２３４５６", "x" * 5000])
def test_wrong_codes_are_throttled_per_account(make_app, code):
    app = _app(make_app, MFA_CODE_LIMIT="3 per 15 minutes", REQUIRE_MFA=True)
    with app.app_context():
        secret = make_totp(make_user("operator"))
    client = app.test_client()
    auth = AuthActions(client)
    assert auth.login().headers["Location"] == "/login/verify"
    statuses = [auth.verify(code).status_code for _ in range(3)]
    assert all(s in (400, 401) for s in statuses), statuses
    # The fourth try is refused even with the right code; it is audited.
    assert auth.verify(totp_code(secret)).status_code == 429
    assert client.get("/").headers["Location"].startswith("/login")
    assert [a for a, _, _ in _audit(app, "staff.mfa_throttled")] == ["staff.mfa_throttled"]
