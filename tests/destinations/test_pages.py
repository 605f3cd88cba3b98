"""Destination pages: operators only, CSRF on every form, the secret shown once, bad input
refused with a form error (nothing stored is lost)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from tests.conftest import run_jobs
from tests.destinations.support import deliveries, destination, seed, shown_secret
from tests.factories import make_connection, make_user
from tests.helpers import csrf_from
from whoopadmin.audit import AuditEvent
from whoopadmin.destinations.models import EVENT_TYPES, Destination
from whoopadmin.destinations.signing import verify
from whoopadmin.extensions import db


def post(client, path, data=None, page=None):
    token = csrf_from(client.get(page or path).get_data(as_text=True))
    return client.post(path, data={**(data or {}), "csrf_token": token})


@pytest.fixture
def conn_id(app):
    with app.app_context():
        return make_connection().id


def create(client, conn_id, url, events=("auth.success", "sleep"), active="y"):
    data = {"connection_id": str(conn_id), "url": url, "events": list(events)}
    if active:
        data["active"] = active
    return post(client, "/destinations/new", data)


def all_destinations(app):
    with app.app_context():
        return list(db.session.scalars(sa.select(Destination.id)))


def test_create_shows_the_secret_once_and_seals_it(private_ok, operator_client, conn_id, receiver):
    app = private_ok
    response = create(operator_client, conn_id, receiver.url)
    assert response.status_code == 200, response.data
    assert "no-store" in response.headers["Cache-Control"]
    secret = shown_secret(response)
    (dest_id,) = all_destinations(app)
    stored = destination(app, dest_id)
    assert stored == {
        "url": receiver.url,
        "events": ["auth.success", "sleep"],
        "active": True,
        "secret": secret,
    }
    with app.app_context():
        row = db.session.get(Destination, dest_id)
        assert secret not in row.signing_secret_sealed
        audit = db.session.scalar(
            sa.select(AuditEvent).where(AuditEvent.action == "destination.create")
        )
        assert audit.actor == "operator@example.com" and secret not in json.dumps(audit.details)

    # No other page shows it: not the list, the edit page, the delivery log, the audit log.
    assert (
        post(
            operator_client, f"/destinations/{dest_id}/test", page=f"/destinations/{dest_id}"
        ).status_code
        == 303
    )
    run_jobs(app, ("deliveries",))
    (delivery,) = deliveries(app)
    assert delivery.status == "delivered"
    verify(
        secret,
        receiver.requests[0]["headers"]["Whoopadmin-Signature"],
        receiver.requests[0]["body"],
    )
    for path in (
        "/destinations",
        f"/destinations/{dest_id}",
        f"/destinations/deliveries/{delivery.id}",
        "/audit",
        "/jobs",
    ):
        page = operator_client.get(path)
        assert page.status_code == 200, path
        assert secret not in page.get_data(as_text=True), path
        assert secret[-8:] not in page.get_data(as_text=True), path


def test_rotating_shows_a_new_secret_once(private_ok, operator_client, receiver):
    """The new secret is shown once and signs; the overlap is tested in test_rotation.py."""
    app = private_ok
    _, dest_id, old = seed(app, receiver.url)
    response = post(
        operator_client,
        f"/destinations/{dest_id}/rotate",
        {"confirm": "yes"},
        page=f"/destinations/{dest_id}/rotate",
    )
    assert response.status_code == 200 and "no-store" in response.headers["Cache-Control"]
    new = shown_secret(response)
    assert new != old and destination(app, dest_id)["secret"] == new
    assert new not in operator_client.get(f"/destinations/{dest_id}").get_data(as_text=True)

    post(operator_client, f"/destinations/{dest_id}/test", page=f"/destinations/{dest_id}")
    run_jobs(app, ("deliveries",))
    request = receiver.requests[0]
    verify(new, request["headers"]["Whoopadmin-Signature"], request["body"])


def test_the_delivery_log_shows_attempts_and_resends(private_ok, operator_client, receiver):
    app = private_ok
    _, dest_id, _ = seed(app, receiver.url)
    receiver.statuses = [500]
    post(operator_client, f"/destinations/{dest_id}/test", page=f"/destinations/{dest_id}")
    run_jobs(app, ("deliveries",))
    page = operator_client.get(f"/destinations/{dest_id}").get_data(as_text=True)
    (first,) = deliveries(app)
    assert first.status == "pending"
    row = page.split(f'data-testid="delivery-{first.id}"')[1].split("</tr>")[0]
    assert "500" in row and "HTTP 500" in row and "next attempt" in row and "Re-send" not in row
    # A pending delivery cannot be re-sent.
    response = post(
        operator_client,
        f"/destinations/deliveries/{first.id}/resend",
        page=f"/destinations/{dest_id}",
    )
    assert response.status_code == 409

    with app.app_context():
        row_ = db.session.get(type(first), first.id)
        row_.status = "failed"
        db.session.commit()
    response = post(
        operator_client,
        f"/destinations/deliveries/{first.id}/resend",
        page=f"/destinations/{dest_id}",
    )
    assert response.headers["Location"] == f"/destinations/{dest_id}"
    run_jobs(app, ("deliveries",))
    _, second = deliveries(app)
    assert second.status == "delivered" and second.resend_of_id == first.id
    page = operator_client.get(f"/destinations/{dest_id}").get_data(as_text=True)
    assert f"re-send of #{first.id}" in page
    detail = operator_client.get(f"/destinations/deliveries/{second.id}").get_data(as_text=True)
    assert "evt_" in detail and "200" in detail
    assert len(receiver.requests) == 2


def test_edit_and_delete(private_ok, operator_client, receiver):
    app = private_ok
    _, dest_id, secret = seed(app, receiver.url)
    response = post(
        operator_client,
        f"/destinations/{dest_id}",
        {"url": receiver.url + "/v2", "events": ["deauth", "body"]},
    )
    assert response.headers["Location"] == f"/destinations/{dest_id}"
    stored = destination(app, dest_id)
    assert stored == {
        "url": receiver.url + "/v2",
        "events": ["deauth", "body"],
        "active": False,
        "secret": secret,
    }
    response = post(
        operator_client,
        f"/destinations/{dest_id}/delete",
        {"confirm": "yes"},
        page=f"/destinations/{dest_id}/delete",
    )
    assert response.headers["Location"] == "/destinations"
    assert all_destinations(app) == []
    assert operator_client.get(f"/destinations/{dest_id}").status_code == 404


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("data", "field_error"),
    [
        ({"url": ""}, "This field is required"),
        ({"url": "https://example.test/" + "a" * 2100}, "Field cannot be longer"),
        ({"url": "not a url"}, "spaces"),
        ({"url": "ftp://example.test/x"}, "https://"),
        ({"url": "http://127.0.0.1:9/x"}, "https://"),
        ({"url": "https://127.0.0.1/x"}, "loopback"),
        ({"url": "https://10.0.0.1/x"}, "private"),
        ({"url": "https://169.254.169.254/latest/meta-data/"}, "link-local"),
        ({"url": "https://[::1]/x"}, "loopback"),
        ({"url": "https://localhost:8443/x"}, "loopback name"),
        ({"url": "https://user:pw@example.test/x"}, "user name"),
        ({"events": []}, "Choose at least one event type"),
        ({"events": ["auth.success", "nope"]}, "not a valid choice"),
        ({"connection_id": "abc"}, "Invalid Choice"),
        ({"connection_id": "999"}, "Not a valid choice"),
    ],
)
def test_bad_input_on_create_is_a_form_error(app, operator_client, conn_id, data, field_error):
    form = {"connection_id": str(conn_id), "url": "https://example.test/x", "events": ["deauth"]}
    form.update(data)
    response = post(operator_client, "/destinations/new", form)
    assert response.status_code == 400
    assert field_error.lower() in response.get_data(as_text=True).lower()
    assert all_destinations(app) == []


@pytest.mark.parametrize(
    ("data", "field_error"),
    [
        ({"url": ""}, "This field is required"),
        ({"url": "x" * 2049}, "Field cannot be longer"),
        ({"url": "https://169.254.169.254/"}, "link-local"),
        ({"url": "https://localhost/"}, "loopback name"),
        ({"events": []}, "Choose at least one event type"),
        ({"events": ["sleep", "DROP TABLE"]}, "not a valid choice"),
    ],
)
def test_bad_input_on_edit_keeps_what_was_stored(app, operator_client, receiver, data, field_error):
    app.config["ALLOW_PRIVATE_DESTINATIONS"] = True
    _, dest_id, secret = seed(app, receiver.url)
    before = destination(app, dest_id)
    app.config["ALLOW_PRIVATE_DESTINATIONS"] = False
    form = {"url": receiver.url, "events": ["sleep"], "active": "y"}
    form.update(data)
    response = post(operator_client, f"/destinations/{dest_id}", form)
    assert response.status_code == 400
    assert field_error.lower() in response.get_data(as_text=True).lower()
    assert destination(app, dest_id) == before


def test_forms_without_csrf_are_refused(app, operator_client, private_ok, receiver):
    conn_id, dest_id, _ = seed(app, receiver.url)
    before = destination(app, dest_id)
    for path in (
        "/destinations/new",
        f"/destinations/{dest_id}",
        f"/destinations/{dest_id}/rotate",
        f"/destinations/{dest_id}/delete",
        f"/destinations/{dest_id}/test",
    ):
        response = operator_client.post(
            path,
            data={
                "url": "https://example.test/",
                "events": ["sleep"],
                "connection_id": str(conn_id),
            },
        )
        assert response.status_code == 400, path
    assert destination(app, dest_id) == before
    assert deliveries(app) == []


def test_unknown_ids_are_404(app, operator_client):
    token = csrf_from(operator_client.get("/destinations/new").get_data(as_text=True))
    assert operator_client.get("/destinations/999").status_code == 404
    assert operator_client.get("/destinations/deliveries/999").status_code == 404
    for path in (
        "/destinations/999/rotate",
        "/destinations/999/delete",
        "/destinations/999/test",
        "/destinations/deliveries/999/resend",
    ):
        assert operator_client.post(path, data={"csrf_token": token}).status_code == 404, path


def test_new_destination_page_without_a_connection_says_so(app, operator_client):
    response = operator_client.get("/destinations/new")
    assert response.status_code == 200
    assert "Create a connection first" in response.get_data(as_text=True)


# --------------------------------------------------------------------------- roles


def all_paths(dest_id: int, delivery_id: int) -> list[tuple[str, str]]:
    return [
        ("GET", "/destinations"),
        ("GET", "/destinations/new"),
        ("POST", "/destinations/new"),
        ("GET", f"/destinations/{dest_id}"),
        ("POST", f"/destinations/{dest_id}"),
        ("POST", f"/destinations/{dest_id}/rotate"),
        ("POST", f"/destinations/{dest_id}/delete"),
        ("POST", f"/destinations/{dest_id}/test"),
        ("GET", f"/destinations/deliveries/{delivery_id}"),
        ("POST", f"/destinations/deliveries/{delivery_id}/resend"),
    ]


def test_support_staff_get_403_and_see_no_secret(private_ok, client, auth, receiver):
    app = private_ok
    conn_id, dest_id, secret = seed(app, receiver.url)
    with app.app_context():
        make_user("support")
        from whoopadmin.destinations import service

        service.emit(conn_id, "auth.success", {})
        delivery_id = deliveries(app)[0].id
    auth.login("support@example.com", "support-password")
    token = csrf_from(client.get("/links").get_data(as_text=True))
    before = destination(app, dest_id)
    for method, path in all_paths(dest_id, delivery_id):
        response = client.open(path, method=method, data={"csrf_token": token})
        assert response.status_code == 403, (method, path)
        assert secret not in response.get_data(as_text=True)
    assert destination(app, dest_id) == before
    assert len(deliveries(app)) == 1


def test_anonymous_users_are_sent_to_sign_in(private_ok, client, receiver):
    app = private_ok
    _, dest_id, _ = seed(app, receiver.url)
    for method, path in all_paths(dest_id, 1):
        response = client.open(path, method=method)
        assert response.status_code in (302, 303, 400, 401), (method, path)
        if response.status_code in (302, 303):
            assert response.headers["Location"].startswith("/login")
    assert destination(app, dest_id)["url"] == receiver.url


def test_every_event_type_can_be_chosen(app, operator_client, conn_id):
    page = operator_client.get("/destinations/new").get_data(as_text=True)
    for event_type in EVENT_TYPES:
        assert f'value="{event_type}"' in page
