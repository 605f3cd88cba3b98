"""The API and admin pages live on admin hosts only; connect pages on the connection's host."""

from __future__ import annotations

import pytest

from tests.api.support import HOST, ApiClient, count
from tests.factories import make_link
from whoopadmin.api.models import ApiKey
from whoopadmin.connect.models import ConnectSession, Link
from whoopadmin.extensions import db

CONNECTION_HOSTS = [
    f"https://{HOST}",
    f"http://{HOST}",
    "https://WHOOP.Acme.Test",
    f"https://{HOST}.",
    f"https://{HOST}:8443",
]


@pytest.fixture
def uid(configured_app):
    with configured_app.app_context():
        return make_link(whoop_user_id=3, reference_id="r3").uid


@pytest.mark.parametrize("base_url", CONNECTION_HOSTS)
def test_api_is_not_served_on_the_connection_host(configured_app, api_key, uid, base_url):
    api = ApiClient(configured_app, api_key)
    body = {"connection": "production", "reference_id": "u"}
    for method, path, kwargs in (
        ("POST", "/connect-sessions", {"json": body}),
        ("GET", "/users?reference_id=r3", {}),
        ("GET", f"/users/{uid}", {}),
        ("DELETE", f"/users/{uid}", {}),
        ("GET", "/openapi.json", {}),
    ):
        response = api.open(method, path, base_url=base_url, validate=False, **kwargs)
        assert response.status_code == 404, (method, path, response.data)
        assert response.mimetype == "application/json" and b"<html" not in response.data
    with configured_app.app_context():
        assert count(ConnectSession) == 0
        assert db.session.scalar(db.select(Link)).status == "active"
    # The same key on the admin host works.
    assert api.get(f"/users/{uid}").status_code == 200


@pytest.mark.parametrize("base_url", CONNECTION_HOSTS[:2])
def test_admin_pages_are_not_served_on_the_connection_host(configured_app, client, base_url):
    for path in ("/", "/api-keys", "/setup", "/setup/production/settings", "/login"):
        assert client.get(path, base_url=base_url).status_code == 404, path
    response = client.post("/api-keys", data={"name": "x"}, base_url=base_url)
    assert response.status_code in (400, 404)
    with configured_app.app_context():
        assert count(ApiKey) == 0


def test_connect_pages_are_not_served_on_the_admin_host(configured_app, api_key):
    response = ApiClient(configured_app, api_key).post(
        "/connect-sessions", json={"connection": "production", "reference_id": "u"}
    )
    url = response.json["url"]
    path = url.removeprefix(f"https://{HOST}")
    client = configured_app.test_client()
    for base_url in ("http://localhost", "https://admin.acme.test", "http://127.0.0.1"):
        assert client.get(path, base_url=base_url).status_code == 404, base_url
        assert client.get("/auth/whoop/oauth2", base_url=base_url).status_code == 404
    assert client.get(path, base_url=f"https://{HOST}").status_code == 200


def test_with_admin_hosts_configured(configured_app, api_key, uid):
    configured_app.config["ADMIN_HOSTS"] = "admin.acme.test"
    api = ApiClient(configured_app, api_key)
    assert api.get(f"/users/{uid}", base_url="https://admin.acme.test").status_code == 200
    for base_url in ("http://localhost", "https://other.acme.test", f"https://{HOST}"):
        response = api.get(f"/users/{uid}", base_url=base_url, validate=False)
        assert response.status_code == 404, base_url
        assert response.mimetype == "application/json"
