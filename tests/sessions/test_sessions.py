"""Server-side sessions: a replayed cookie after sign-out is anonymous, changes to an account
end its sessions, idle and absolute limits, cheap last-seen writes, the sessions page."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event, select

from tests.factories import make_user
from tests.helpers import AuthActions, csrf_from
from whoopadmin.audit import AuditEvent, utcnow
from whoopadmin.extensions import db
from whoopadmin.sessions.models import StaffSession


@pytest.fixture
def staff(app):
    with app.app_context():
        make_user("operator")
        make_user("support")


def signed_in(app, email="operator@example.com", password="operator-password", **env):
    """A new client signed in through the form."""
    client = app.test_client()
    if env:
        client.environ_base.update(env)
    response = AuthActions(client).login(email, password)
    assert response.headers["Location"] == "/", response.data
    return client


def is_signed_in(client) -> bool:
    response = client.get("/")
    if response.status_code == 200:
        return True
    assert response.headers["Location"].startswith("/login")
    return False


def _sessions(app):
    with app.app_context():
        rows = db.session.scalars(select(StaffSession).order_by(StaffSession.id)).all()
        for row in rows:
            db.session.expunge(row)
        return rows


def _post(client, path, page="/account/sessions"):
    token = csrf_from(client.get(page).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token})


def test_replayed_cookie_after_sign_out_is_anonymous(app, staff):
    """The attack: keep a copy of the cookie, let the person sign out, replay it from the
    same address with the same browser."""
    victim = signed_in(app)
    stolen = victim.get_cookie("session").value
    AuthActions(victim).logout()
    assert not is_signed_in(victim)

    attacker = app.test_client()  # same address (127.0.0.1), same User-Agent
    attacker.set_cookie("session", stolen)
    assert not is_signed_in(attacker)
    assert attacker.get("/staff").headers["Location"].startswith("/login")
    assert _sessions(app) == []


def test_forged_remember_cookie_signs_nobody_in(app, staff):
    """flask-login's remember-me cookie (signed with the app's key) names only a user id:
    without a live session it is worth nothing."""
    from flask_login.utils import encode_cookie

    client = signed_in(app)
    AuthActions(client).logout()
    with app.test_request_context():
        remember = encode_cookie("1")
    client.set_cookie("remember_token", remember)
    assert not is_signed_in(client)


def test_cookie_holds_a_random_id_stored_only_hashed(app, staff):
    client = signed_in(app)
    payload = app.session_interface.get_signing_serializer(app).loads(
        client.get_cookie("session").value
    )
    token = payload["sid"]
    assert len(token) >= 40
    [row] = _sessions(app)
    assert token not in row.token_hash and row.token_hash != token
    with app.app_context(), db.engine.connect() as conn:
        dump = repr(conn.execute(sa.text("SELECT * FROM staff_sessions")).all())
    assert token not in dump


def test_each_sign_in_is_its_own_session(app, staff):
    first = signed_in(app)
    second = signed_in(
        app,
        REMOTE_ADDR="127.0.0.7",
        HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    )
    rows = _sessions(app)
    assert [r.address for r in rows] == ["127.0.0.1", "127.0.0.7"]
    assert "Firefox" in rows[1].user_agent
    AuthActions(first).logout()
    assert not is_signed_in(first) and is_signed_in(second)


def test_password_change_ends_the_other_sessions(app, staff):
    here, elsewhere = signed_in(app), signed_in(app)
    token = csrf_from(here.get("/account/password").get_data(as_text=True))
    response = here.post(
        "/account/password",
        data={
            "current": "operator-password",
            "password": "a-fresh-operator-pass",
            "confirm": "a-fresh-operator-pass",
            "csrf_token": token,
        },
    )
    assert response.headers["Location"] == "/account/sessions"
    assert is_signed_in(here)
    assert not is_signed_in(elsewhere)


def test_role_change_ends_that_persons_sessions(app, staff):
    operator = signed_in(app)
    support = signed_in(app, "support@example.com", "support-password")
    with app.app_context():
        support_id = db.session.scalar(
            select(StaffSession.user_id).where(StaffSession.user_id != 1)
        )
    token = csrf_from(operator.get(f"/staff/{support_id}").get_data(as_text=True))
    operator.post(f"/staff/{support_id}/role", data={"role": "operator", "csrf_token": token})
    assert not is_signed_in(support)
    assert is_signed_in(operator)


def test_deactivation_ends_sessions_even_if_reactivated(app, staff):
    operator = signed_in(app)
    support = signed_in(app, "support@example.com", "support-password")
    _post(operator, "/staff/2/deactivate", page="/staff/2")
    _post(operator, "/staff/2/activate", page="/staff/2")
    assert not is_signed_in(support)  # reactivation does not bring the old session back


def _age(app, **fields):
    with app.app_context():
        db.session.execute(sa.update(StaffSession).values(**fields))
        db.session.commit()


def test_idle_timeout(make_app):
    from tests.helpers import reset_schema

    app = make_app(SESSION_IDLE_MINUTES=30)
    reset_schema(app)
    with app.app_context():
        make_user("operator")
    client = signed_in(app)
    _age(app, last_seen_at=utcnow() - timedelta(minutes=29))
    assert is_signed_in(client)  # 29 minutes idle: still there (and now touched)
    _age(app, last_seen_at=utcnow() - timedelta(minutes=31))
    assert not is_signed_in(client)
    assert _sessions(app) == []  # the expired row is gone


def test_absolute_lifetime(app, staff):
    client = signed_in(app)
    _age(app, created_at=utcnow() - timedelta(hours=11, minutes=59))
    assert is_signed_in(client)
    _age(app, created_at=utcnow() - timedelta(hours=12, minutes=1))
    assert not is_signed_in(client)  # used a second ago, but signed in 12 hours ago


def _count_session_writes(app):
    writes = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        text = statement.lower()
        if "staff_sessions" in text and text.lstrip().startswith(("update", "insert", "delete")):
            writes.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", listener)
    return writes, lambda: event.remove(engine, "before_cursor_execute", listener)


def test_last_seen_is_written_at_most_once_a_minute(app, staff):
    client = signed_in(app)
    writes, stop = _count_session_writes(app)
    try:
        for _ in range(5):
            assert client.get("/").status_code == 200
        assert writes == []  # seen less than a minute ago: no write at all
    finally:
        stop()
    _age(app, last_seen_at=utcnow() - timedelta(seconds=90))
    writes, stop = _count_session_writes(app)
    try:
        for _ in range(5):
            assert client.get("/").status_code == 200
        assert len(writes) == 1, writes  # the first request of the minute, and no other
    finally:
        stop()
    [row] = _sessions(app)
    assert utcnow() - row.last_seen_at < timedelta(seconds=30)


def test_sessions_page_lists_and_ends_sessions(app, staff):
    firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
    here = signed_in(app)
    phone = signed_in(app, REMOTE_ADDR="127.0.0.9", HTTP_USER_AGENT=firefox)
    laptop = signed_in(app, REMOTE_ADDR="127.0.0.8")
    other_person = signed_in(app, "support@example.com", "support-password")
    page = here.get("/account/sessions").get_data(as_text=True)
    assert page.count('data-testid="session-row"') == 3  # only this person's
    assert page.count('data-testid="current-session"') == 1
    assert "Firefox on Linux" in page and "127.0.0.9" in page and "127.0.0.8" in page

    phone_id = next(r.id for r in _sessions(app) if r.address == "127.0.0.9")
    response = _post(here, f"/account/sessions/{phone_id}/end")
    assert response.headers["Location"] == "/account/sessions"
    assert not is_signed_in(phone) and is_signed_in(laptop)

    # Someone else's session id is not yours to end.
    support_row = next(r for r in _sessions(app) if r.user_id == 2)
    assert _post(here, f"/account/sessions/{support_row.id}/end").status_code == 404
    assert _post(here, "/account/sessions/999999/end").status_code == 404
    assert is_signed_in(other_person)

    _post(here, "/account/sessions/end-others")
    assert not is_signed_in(laptop) and is_signed_in(here) and is_signed_in(other_person)

    # Ending the current session signs this browser out.
    [mine] = [r for r in _sessions(app) if r.user_id == 1]
    response = _post(here, f"/account/sessions/{mine.id}/end")
    assert response.headers["Location"] == "/login"
    assert not is_signed_in(here)
    with app.app_context():
        actions = db.session.scalars(select(AuditEvent.action)).all()
    assert {"staff.session_end", "staff.session_end_others", "staff.logout"} <= set(actions)


def test_session_buttons_need_csrf(app, staff):
    client = signed_in(app)
    [row] = _sessions(app)
    assert client.post(f"/account/sessions/{row.id}/end").status_code == 400
    assert client.post("/account/sessions/end-others").status_code == 400
    assert is_signed_in(client)


def test_purge_expired_sweeps_everyone(app, staff):
    from whoopadmin.sessions.service import purge_expired

    signed_in(app)
    signed_in(app, "support@example.com", "support-password")
    with app.app_context():
        db.session.execute(
            sa.update(StaffSession)
            .where(StaffSession.user_id == 2)
            .values(last_seen_at=utcnow() - timedelta(hours=1))
        )
        db.session.commit()
        assert purge_expired() == 1
    assert [r.user_id for r in _sessions(app)] == [1]


def test_public_pages_and_webhooks_read_no_session(configured_app, new_session, operator_client):
    """A staff cookie sent to a connect page or a webhook URL costs no session lookup."""
    from tests.helpers import PUBLIC, post_webhook

    cookie = operator_client.get_cookie("session").value
    token = new_session()
    statements = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement.lower())

    with configured_app.app_context():
        engine = db.engine
        secret = configured_app.whoop_app.client_secret
    public = configured_app.test_client()
    public.set_cookie("session", cookie, domain="whoop.acme.test")
    event.listen(engine, "before_cursor_execute", listener)
    try:
        assert public.get(f"/connect/{token}", base_url=PUBLIC).status_code == 200
        event_body = {"user_id": 1, "id": "x", "type": "sleep.updated", "trace_id": "t-1"}
        assert post_webhook(public, secret, event_body).status_code < 500
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert statements, "the listener saw the requests' queries"
    assert not [s for s in statements if "staff_sessions" in s or "staff_users" in s]
