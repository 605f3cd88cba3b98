"""Passwords: length and zxcvbn, changing your own, and one-time set-password links that
expire, work once, and are stored only hashed."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from tests.factories import make_user
from tests.helpers import AuthActions, csrf_from
from whoopadmin.audit import AuditEvent, utcnow
from whoopadmin.auth.models import StaffUser
from whoopadmin.extensions import db
from whoopadmin.passwords.models import PasswordLink

LINK_RE = re.compile(r'data-copy="http://localhost(/set-password/[^"]+)"')


@pytest.fixture
def staff(app):
    with app.app_context():
        make_user("operator")
        return make_user("support").id


@pytest.fixture
def operator(app, staff):
    client = app.test_client()
    AuthActions(client).login()
    return client


def issue(operator, user_id) -> str:
    page = operator.get(f"/staff/{user_id}").get_data(as_text=True)
    response = operator.post(
        f"/staff/{user_id}/password-link", data={"csrf_token": csrf_from(page)}
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    return LINK_RE.search(response.get_data(as_text=True)).group(1)


def set_password(client, path, password, confirm=None):
    page = client.get(path)
    if page.status_code != 200:
        return page
    token = csrf_from(page.get_data(as_text=True))
    return client.post(
        path,
        data={"password": password, "confirm": confirm or password, "csrf_token": token},
    )


def can_sign_in(app, email, password) -> bool:
    return AuthActions(app.test_client()).login(email, password).headers.get("Location") == "/"


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short-pass1", "at least 12 characters"),
        ("password1234", "very common password"),
        ("qwertyuiop123", "very common password"),
        ("Password123!", "less common password"),
        ("aaaaaaaaaaaaaaaa", "less common password"),
        ("support@example.com", "less common password"),
        (" padded-but-long-enough ", "start or end with a space"),
        ("x" * 1025, "longer than 1024"),
    ],
)
def test_weak_passwords_are_refused(app, staff, operator, password, message):
    path = issue(operator, staff)
    response = set_password(app.test_client(), path, password)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert set_password(app.test_client(), path, "a-fine-new-passphrase").headers["Location"] == (
        "/login"
    )  # the refused attempt did not use the link up


def test_link_works_once_and_ends_the_persons_sessions(app, staff, operator):
    support = app.test_client()
    AuthActions(support).login("support@example.com", "support-password")
    path = issue(operator, staff)
    response = set_password(app.test_client(), path, "a-fine-new-passphrase")
    assert response.headers["Location"] == "/login"
    assert support.get("/").headers["Location"].startswith("/login")
    assert can_sign_in(app, "support@example.com", "a-fine-new-passphrase")
    assert not can_sign_in(app, "support@example.com", "support-password")
    # The attack: the link again (from the browser history, a forwarded e-mail).
    again = set_password(app.test_client(), path, "attackers-own-passphrase")
    assert again.status_code == 404
    assert b"does not work" in again.data
    assert not can_sign_in(app, "support@example.com", "attackers-own-passphrase")
    with app.app_context():
        actions = db.session.scalars(select(AuditEvent.action)).all()
    assert "staff.password_link" in actions and "staff.password_set" in actions


def test_expired_forged_and_replaced_links_are_dead(app, staff, operator):
    first = issue(operator, staff)
    second = issue(operator, staff)
    assert set_password(app.test_client(), first, "a-fine-new-passphrase").status_code == 404
    for forged in (
        second[:-1] + ("A" if second[-1] != "A" else "B"),
        "/set-password/" + "x" * 5000,
        "/set-password/%00",
        "/set-password/../staff",
    ):
        assert app.test_client().get(forged).status_code in (400, 404), forged
    with app.app_context():
        db.session.execute(
            sa.update(PasswordLink).values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    assert set_password(app.test_client(), second, "a-fine-new-passphrase").status_code == 404
    assert can_sign_in(app, "support@example.com", "support-password")


def test_link_token_is_stored_only_hashed(app, staff, operator):
    path = issue(operator, staff)
    token = path.rsplit("/", 1)[1]
    with app.app_context(), db.engine.connect() as conn:
        dump = "".join(repr(conn.execute(sa.select(t)).all()) for t in db.metadata.sorted_tables)
    assert token not in dump and token[:16] not in dump
    # And the staff page does not show it again.
    assert token not in operator.get(f"/staff/{staff}").get_data(as_text=True)


def test_only_operators_issue_links(app, staff):
    support = app.test_client()
    AuthActions(support).login("support@example.com", "support-password")
    token = csrf_from(support.get("/").get_data(as_text=True))
    assert support.post("/staff/1/password-link", data={"csrf_token": token}).status_code == 403
    assert support.post("/staff/1/password-link").status_code in (400, 403)


def test_deactivated_account_gets_no_link(app, staff, operator):
    path = issue(operator, staff)
    page = operator.get(f"/staff/{staff}").get_data(as_text=True)
    operator.post(f"/staff/{staff}/deactivate", data={"csrf_token": csrf_from(page)})
    assert app.test_client().get(path).status_code == 404
    response = operator.post(f"/staff/{staff}/password-link", data={"csrf_token": csrf_from(page)})
    assert "Reactivate the account" in operator.get(response.headers["Location"]).get_data(
        as_text=True
    )


@pytest.mark.parametrize(
    ("current", "new", "confirm", "message"),
    [
        ("wrong-password-here", "a-fine-new-passphrase", None, "current password is wrong"),
        ("operator-password", "operator-password", None, "the one you have now"),
        ("operator-password", "password1234", None, "very common password"),
        ("operator-password", "a-fine-new-passphrase", "different-one", "passwords differ"),
    ],
)
def test_change_own_password_bad_input(app, staff, operator, current, new, confirm, message):
    page = operator.get("/account/password").get_data(as_text=True)
    response = operator.post(
        "/account/password",
        data={
            "current": current,
            "password": new,
            "confirm": confirm or new,
            "csrf_token": csrf_from(page),
        },
    )
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert can_sign_in(app, "operator@example.com", "operator-password")


def test_change_own_password(app, staff, operator):
    page = operator.get("/account/password").get_data(as_text=True)
    operator.post(
        "/account/password",
        data={
            "current": "operator-password",
            "password": "a-fine-new-passphrase",
            "confirm": "a-fine-new-passphrase",
            "csrf_token": csrf_from(page),
        },
    )
    assert can_sign_in(app, "operator@example.com", "a-fine-new-passphrase")
    with app.app_context():
        user = db.session.scalar(select(StaffUser).where(StaffUser.id == 1))
        assert "a-fine-new-passphrase" not in user.password_hash
        details = repr(db.session.scalars(select(AuditEvent.details)).all())
        assert "a-fine-new-passphrase" not in details
        actions = db.session.scalars(select(AuditEvent.action)).all()
    assert "staff.password_change" in actions


def test_wrong_current_password_counts_towards_the_throttle(make_app):
    from tests.helpers import reset_schema

    app = make_app(LOGIN_ACCOUNT_LIMIT="2 per hour")
    reset_schema(app)
    with app.app_context():
        make_user("operator")
    client = app.test_client()
    AuthActions(client).login()
    statuses = []
    for _ in range(3):
        page = client.get("/account/password").get_data(as_text=True)
        statuses.append(
            client.post(
                "/account/password",
                data={
                    "current": "a-wrong-guess-at-it",
                    "password": "a-fine-new-passphrase",
                    "confirm": "a-fine-new-passphrase",
                    "csrf_token": csrf_from(page),
                },
            ).status_code
        )
    assert statuses == [400, 400, 429]
