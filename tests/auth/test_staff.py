"""Operators manage staff in the UI; every change is audited; bad input is refused."""

import re

import pytest
from sqlalchemy import select

from tests.factories import make_user
from tests.helpers import AuthActions, csrf_from
from whoopadmin.audit import AuditEvent
from whoopadmin.auth.models import StaffUser
from whoopadmin.extensions import db


@pytest.fixture
def operator(app, auth):
    with app.app_context():
        user_id = make_user("operator").id
    auth.login()
    return user_id


def _post(client, path, data, page="/staff"):
    data = dict(data, csrf_token=csrf_from(client.get(page).get_data(as_text=True)))
    return client.post(path, data=data)


def _user(app, email):
    with app.app_context():
        user = db.session.scalar(select(StaffUser).where(StaffUser.email == email))
        if user is not None:
            db.session.expunge(user)
        return user


def _actions(app):
    with app.app_context():
        return [
            (e.actor, e.action)
            for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        ]


def test_create_staff_issues_a_set_password_link(client, app, operator):
    response = _post(client, "/staff/new", {"email": "Helper@Example.com", "role": "support"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    link = re.search(r'data-copy="(http://localhost/set-password/[^"]+)"', page).group(1)
    user = _user(app, "helper@example.com")
    assert user.role == "support" and user.active
    assert ("operator@example.com", "staff.create") in _actions(app)
    assert "helper@example.com" in client.get("/staff").get_data(as_text=True)
    # Nobody knows the new account's password until its owner sets one with the link.
    early = AuthActions(app.test_client()).login("helper@example.com", "helpers-own-pass-42")
    assert early.status_code == 401
    helper = app.test_client()
    path = link.removeprefix("http://localhost")
    form = csrf_from(helper.get(path).get_data(as_text=True))
    done = helper.post(
        path,
        data={
            "password": "helpers-own-pass-42",
            "confirm": "helpers-own-pass-42",
            "csrf_token": form,
        },
    )
    assert done.headers["Location"] == "/login"
    assert (
        AuthActions(helper).login("helper@example.com", "helpers-own-pass-42").headers["Location"]
        == "/"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "not an email", "role": "support"}, b"valid"),
        ({"email": "x@example.com", "role": "admin"}, b"Not a valid"),
        ({"email": "operator@example.com", "role": "support"}, b"already exists"),
        ({"email": "", "role": "support"}, b"required"),
    ],
)
def test_create_staff_bad_input(client, app, operator, data, message):
    response = _post(client, "/staff/new", data)
    assert response.status_code == 400
    assert message in response.data
    with app.app_context():
        assert db.session.scalar(select(db.func.count(StaffUser.id))) == 1
        assert _user(app, "operator@example.com").role == "operator"  # nothing lost


def test_change_role(client, app, operator):
    with app.app_context():
        other = make_user("support").id
    response = _post(client, f"/staff/{other}/role", {"role": "operator"})
    assert response.headers["Location"] == f"/staff/{other}"
    assert _user(app, "support@example.com").role == "operator"
    assert ("operator@example.com", "staff.change_role") in _actions(app)


def test_change_role_bad_value(client, app, operator):
    with app.app_context():
        other = make_user("support").id
    _post(client, f"/staff/{other}/role", {"role": "root"})
    assert _user(app, "support@example.com").role == "support"


def test_last_operator_cannot_be_demoted_or_deactivated(client, app, operator):
    response = _post(client, f"/staff/{operator}/role", {"role": "support"})
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "last active operator" in page
    assert _user(app, "operator@example.com").role == "operator"
    response = _post(client, f"/staff/{operator}/deactivate", {})
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "cannot deactivate your own account" in page
    assert _user(app, "operator@example.com").active


def test_deactivate_signs_the_user_out(app, client, operator):
    with app.app_context():
        other_id = make_user("support").id
    other = app.test_client()
    token = csrf_from(other.get("/login").get_data(as_text=True))
    other.post(
        "/login",
        data={"email": "support@example.com", "password": "support-password", "csrf_token": token},
    )
    assert other.get("/").status_code == 200
    _post(client, f"/staff/{other_id}/deactivate", {})
    assert not _user(app, "support@example.com").active
    assert other.get("/").headers["Location"].startswith("/login")
    _post(client, f"/staff/{other_id}/activate", {})
    assert _user(app, "support@example.com").active
    actions = [a for _, a in _actions(app)]
    assert "staff.deactivate" in actions and "staff.activate" in actions


def test_unknown_staff_is_404(client, operator):
    assert client.get("/staff/999").status_code == 404
    assert _post(client, "/staff/999/deactivate", {}).status_code == 404
    assert client.get("/staff/abc").status_code == 404


def test_staff_post_without_csrf_is_400(client, app, operator):
    with app.app_context():
        other_id = make_user("support").id
    response = client.post(f"/staff/{other_id}/deactivate")
    assert response.status_code == 400
    assert _user(app, "support@example.com").active
