"""The support console: search, filters, pagination, the link page, actions, roles, audit."""

import pytest
import sqlalchemy as sa
from rq import Queue

from tests.conftest import run_jobs
from tests.factories import make_link
from tests.helpers import AuthActions, csrf_from, post_form, post_webhook
from whoopadmin.audit import AuditEvent
from whoopadmin.connect.models import ConnectSession, Link
from whoopadmin.extensions import db
from whoopadmin.redisconn import get_redis


def _uid(app, link_id):
    with app.app_context():
        return db.session.get(Link, link_id).uid


def test_timeline_from_a_real_flow(configured_app, linked, sandbox, member, support_client):
    from whoopadmin.sync import tokens

    run_jobs(configured_app, ("backfill",))
    # A webhook, signed as WHOOP signs it.
    md = sandbox.state.data(member.user_id)
    sleep_id = md.sleeps.records[0]["id"]
    event = {
        "user_id": member.user_id,
        "id": sleep_id,
        "type": "sleep.updated",
        "trace_id": "trace-support-1",
    }
    hook = post_webhook(configured_app.test_client(), configured_app.whoop_app.client_secret, event)
    assert hook.status_code == 200
    run_jobs(configured_app, ("webhooks",))
    with configured_app.app_context():
        tokens.refresh_link(linked, "support-test", force=True)
    page = support_client.get(f"/links/{_uid(configured_app, linked)}").get_data(as_text=True)
    for kind in ("connect", "job", "webhook", "token_refresh"):
        assert f'data-kind="{kind}"' in page, kind
    assert "trace id trace-support-1" in page
    assert "Backfill of sleep" in page
    assert "<polyline" in page  # the recovery/HRV charts have data
    assert 'aria-label="data freshness"' in page and "<rect" in page
    assert 'data-type="sleep"' in page and 'data-testid="raw-record"' in page
    # Support never sees a secret or a token.
    with configured_app.app_context():
        link = db.session.get(Link, linked)
        secrets = [
            link.access_token,
            link.refresh_token,
            link.email,
            configured_app.whoop_app.client_secret,
        ]
    for secret in secrets:
        assert secret not in page


@pytest.fixture
def many(configured_app):
    """120 links on the configured connection, with a few distinct ones."""
    with configured_app.app_context():
        for n in range(120):
            make_link(
                whoop_user_id=10_000 + n,
                reference_id=f"ref-{n:03d}",
                status="reauth_required" if n % 10 == 0 else "active",
            )
        special = make_link(whoop_user_id=99_999, reference_id="alice-1")
        from whoopadmin.connect.service import email_hash

        special.email_hash = email_hash("Alice@Example.com")
        db.session.commit()
        return special.uid


def _rows(page):
    return page.count('data-link="')


def test_search_and_filters(configured_app, many, support_client):
    def get(**params):
        return support_client.get("/links", query_string=params).get_data(as_text=True)

    assert 'data-link="' in get(q="alice-1") and _rows(get(q="alice-1")) == 1
    assert _rows(get(q="99999")) == 1
    assert _rows(get(q="alice@example.com")) == 1  # exact, via the keyed hash
    assert _rows(get(q=many)) == 1  # the link id
    assert _rows(get(q="nobody")) == 0
    assert _rows(get(status="reauth_required")) == 12
    assert _rows(get(environment="production", status="reauth_required")) == 12
    assert _rows(get(environment="staging")) == 0
    with configured_app.app_context():
        from whoopadmin.setup.models import Connection

        connection_id = db.session.scalar(sa.select(Connection.id))
    assert _rows(get(connection=str(connection_id), q="ref-001")) == 1
    counts = get()
    assert 'data-status="active">active: 109<' in counts
    assert 'data-status="reauth_required">reauth required: 12<' in counts


@pytest.mark.parametrize(
    "params",
    [
        {"status": "bogus"},
        {"connection": "x"},
        {"before": "-1"},
        {"before": "9" * 40},
        {"q": "'; DROP TABLE links; --"},
        {"q": "%"},
        {"q": "x" * 1000},
        {"environment": "\x01"},
    ],
)
def test_bad_list_parameters_are_harmless(configured_app, many, support_client, params):
    response = support_client.get("/links", query_string=params)
    assert response.status_code == 200
    with configured_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Link.id))) == 121


def test_keyset_pagination_is_stable_under_inserts(configured_app, many, support_client):
    first = support_client.get("/links").get_data(as_text=True)
    assert _rows(first) == 50
    cursor = first.split("before=")[1].split('"')[0]
    with configured_app.app_context():
        for n in range(5):  # new links arrive while someone pages
            make_link(whoop_user_id=50_000 + n, reference_id=f"new-{n}")
    second = support_client.get(f"/links?before={cursor}").get_data(as_text=True)
    third_cursor = second.split("before=")[1].split('"')[0]
    third = support_client.get(f"/links?before={third_cursor}").get_data(as_text=True)
    seen = [
        p.split('data-link="')[1].split('"')[0]
        for p in (first + second + third).split("<tr ")[1:]
        if 'data-link="' in p
    ]
    assert len(seen) == len(set(seen)) == 121  # every old link exactly once, none of the new
    assert "new-0" not in second + third


def test_unknown_link_is_404(support_client):
    assert support_client.get("/links/nope").status_code == 404


def test_support_actions_are_queued_and_audited(configured_app, linked, support_client):
    uid = _uid(configured_app, linked)
    page = f"/links/{uid}"
    assert post_form(support_client, f"{page}/resync", page).headers["Location"] == page
    assert post_form(support_client, f"{page}/refresh", page).headers["Location"] == page
    reconnect = post_form(support_client, f"{page}/reconnect", page)
    assert reconnect.status_code == 200
    assert "https://whoop.acme.test/connect/" in reconnect.get_data(as_text=True)
    with configured_app.app_context():
        redis = get_redis(configured_app)
        refresh_jobs = Queue("refresh", connection=redis).jobs
        expected = [(f"refresh-now-{linked}", {"force": True})]
        assert [(j.id, j.kwargs) for j in refresh_jobs] == expected
        resync = [j for j in Queue("backfill", connection=redis).jobs if j.id.startswith("resync")]
        assert len(resync) == 1 and resync[0].args[0] == linked
        sessions = db.session.scalars(sa.select(ConnectSession.reference_id)).all()
        assert sessions.count("user-42") == 2  # the first connect and the reconnect link
        actions = db.session.scalars(
            sa.select(AuditEvent.action).where(AuditEvent.actor == "support@example.com")
        ).all()
    assert {"link.resync", "link.refresh_now", "link.reconnect_link"} <= set(actions)
    # The staff actions show on the timeline too.
    assert "Re-sync requested" in support_client.get(page).get_data(as_text=True)


def test_disconnect_is_for_operators(configured_app, linked, support_client, sandbox):
    uid = _uid(configured_app, linked)
    page = f"/links/{uid}"
    assert "Disconnect" not in support_client.get(page).get_data(as_text=True)
    assert post_form(support_client, f"{page}/disconnect", page).status_code == 403
    operator = configured_app.test_client()
    AuthActions(operator).login()
    token = csrf_from(operator.get(f"{page}/disconnect").get_data(as_text=True))
    confirmed = operator.post(f"{page}/disconnect", data={"csrf_token": token, "confirm": "yes"})
    assert confirmed.headers["Location"] == page
    with configured_app.app_context():
        link = db.session.get(Link, linked)
        assert link.status == "revoked" and link.access_token is None
    assert 'data-kind="disconnect"' in operator.get(page).get_data(as_text=True)


def test_actions_need_csrf(configured_app, linked, support_client):
    uid = _uid(configured_app, linked)
    assert support_client.post(f"/links/{uid}/resync").status_code == 400


def test_audit_log_is_for_operators(configured_app, support_client):
    assert support_client.get("/audit").status_code == 403
    operator = configured_app.test_client()
    AuthActions(operator).login()
    page = operator.get("/audit").get_data(as_text=True)
    assert "connection.go_live" in page and "staff.login" in page
    filtered = operator.get("/audit", query_string={"action": "connection."}).get_data(as_text=True)
    assert "connection.go_live" in filtered and "staff.login" not in filtered
    by_actor = operator.get("/audit", query_string={"actor": "nobody@example.com"}).get_data(
        as_text=True
    )
    assert "Nothing recorded." in by_actor


def test_links_need_login(configured_app):
    response = configured_app.test_client().get("/links")
    assert response.headers["Location"].startswith("/login")
