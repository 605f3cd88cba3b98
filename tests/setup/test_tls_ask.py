"""Caddy's on-demand TLS permission endpoint."""

import pytest


def test_verified_hostname_is_allowed(configured_app):
    client = configured_app.test_client()
    response = client.get("/internal/tls/ask?domain=whoop.acme.test")
    assert response.status_code == 200
    assert client.get("/internal/tls/ask?domain=WHOOP.acme.test.").status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "domain=unknown.acme.test",
        "domain=acme.test",
        "domain=192.0.2.1",
        "domain=*.acme.test",
        "domain=" + "a" * 400,
        "domain=%00",
        "",
        "domain=",
    ],
)
def test_others_are_refused(configured_app, query):
    response = configured_app.test_client().get(f"/internal/tls/ask?{query}")
    assert 400 <= response.status_code < 500


def test_pending_hostname_is_refused(wizard):
    wizard.create()
    wizard.subdomain("production", "whoop.acme.test")
    response = wizard.app.test_client().get("/internal/tls/ask?domain=whoop.acme.test")
    assert response.status_code == 404


def test_exact_route_without_redirect(configured_app):
    client = configured_app.test_client()
    assert client.get("/internal/tls/ask/?domain=whoop.acme.test").status_code == 404


def test_only_allowed_addresses_may_ask(configured_app):
    client = configured_app.test_client()
    response = client.get(
        "/internal/tls/ask?domain=whoop.acme.test", environ_base={"REMOTE_ADDR": "203.0.113.9"}
    )
    assert response.status_code == 403


def test_moved_hostname_is_refused(configured_app):
    from whoopadmin.extensions import db
    from whoopadmin.setup.models import Connection

    with configured_app.app_context():
        c = db.session.scalar(db.select(Connection))
        c.status = "moved"
        db.session.commit()
    response = configured_app.test_client().get("/internal/tls/ask?domain=whoop.acme.test")
    assert response.status_code == 404
