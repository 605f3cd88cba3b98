"""The connection's data retention page: good values are saved and audited, bad ones are
refused with a clear message and leave the stored policy as it was; the last run shows."""

from __future__ import annotations

import sqlalchemy as sa

from tests.factories import make_connection, make_link
from tests.helpers import csrf_from
from whoopadmin.audit import AuditEvent
from whoopadmin.extensions import db
from whoopadmin.retention import service
from whoopadmin.retention.models import DataPolicy

URL = "/setup/production/retention"


def _stored(app) -> tuple | None:
    with app.app_context():
        row = db.session.get(DataPolicy, 1)
        if row is None:
            return None
        return (row.raw_days, row.webhook_days, row.delivery_days, row.erasure_grace_days)


def _form(token: str, **values) -> dict:
    data = {
        "csrf_token": token,
        "raw_days": "0",
        "webhook_days": "30",
        "delivery_days": "30",
        "erasure_grace_days": "7",
    }
    data.update({k: str(v) for k, v in values.items()})
    return data


def test_retention_is_set_on_the_connection_page(app, operator_client):
    with app.app_context():
        make_connection()
    page = operator_client.get(URL)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'value="30"' in html and "Not run yet for this connection." in html
    assert "/setup/production/retention" in operator_client.get("/setup/production/settings").text
    token = csrf_from(html)
    saved = operator_client.post(
        URL, data=_form(token, raw_days=400, webhook_days=14, delivery_days=0, erasure_grace_days=0)
    )
    assert saved.status_code == 303
    assert _stored(app) == (400, 14, 0, 0)
    with app.app_context():
        row = db.session.scalar(
            sa.select(AuditEvent).where(AuditEvent.action == "connection.data_policy")
        )
        assert row.actor == "operator@example.com"
        assert row.details == {
            "raw_days": 400,
            "webhook_days": 14,
            "delivery_days": 0,
            "erasure_grace_days": 0,
        }
    again = operator_client.get(URL).get_data(as_text=True)
    assert 'value="400"' in again and 'value="14"' in again


def test_bad_retention_values_are_refused_and_change_nothing(app, operator_client):
    with app.app_context():
        make_connection()
    token = csrf_from(operator_client.get(URL).get_data(as_text=True))
    operator_client.post(URL, data=_form(token, raw_days=90))
    before = _stored(app)
    assert before == (90, 30, 30, 7)
    cases = [
        ({"raw_days": -1}, "Enter a whole number of days from 0 to 3650."),
        ({"webhook_days": 99999999}, "Enter a whole number of days from 0 to 3650."),
        ({"delivery_days": "abc"}, "Not a valid integer value."),
        ({"delivery_days": "1.5"}, "Not a valid integer value."),
        ({"erasure_grace_days": 91}, "Enter a whole number of days from 0 to 90."),
        ({"erasure_grace_days": ""}, "Enter a number of days (0 = erase at once)."),
        ({"raw_days": "9" * 40}, "Enter a whole number of days from 0 to 3650."),
    ]
    for values, message in cases:
        response = operator_client.post(URL, data=_form(token, **{"raw_days": 90, **values}))
        assert response.status_code == 400, values
        assert message in response.get_data(as_text=True), values
        assert _stored(app) == before, values
    # Without the CSRF token nothing is saved either.
    assert operator_client.post(URL, data={"raw_days": "1"}).status_code == 400
    assert _stored(app) == before
    with app.app_context():
        logged = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "connection.data_policy")
        ).all()
        assert len(logged) == 1
    assert operator_client.get("/setup/nowhere/retention").status_code == 404


def test_the_page_shows_what_the_last_run_removed(app, operator_client):
    from datetime import timedelta

    from whoopadmin.audit import utcnow
    from whoopadmin.sync.models import WhoopRecord

    with app.app_context():
        connection = make_connection()
        link = make_link(connection, whoop_user_id=88, reference_id="ret-page")
        old = utcnow() - timedelta(days=50)
        for n in range(3):
            db.session.add(
                WhoopRecord(link_id=link.id, type="sleep", whoop_id=f"s{n}", start=old, raw={})
            )
        db.session.commit()
        service.save_policy("test", connection, raw_days=30)
        service.enforce(connection)
    html = operator_client.get(URL).get_data(as_text=True)
    assert "Not run yet" not in html
    assert (
        '<tr data-kind="raw_objects"><td>raw WHOOP objects</td><td class="text-end">3 removed'
        in html
    )
    assert (
        '<tr data-kind="webhook_events"><td>webhook events</td><td class="text-end">0 removed'
        in html
    )


def test_support_staff_cannot_change_retention(configured_app, support_client):
    before = _stored(configured_app)
    assert support_client.get(URL).status_code == 403
    token = csrf_from(support_client.get("/links").get_data(as_text=True))
    assert support_client.post(URL, data=_form(token, raw_days=1)).status_code == 403
    assert _stored(configured_app) == before
