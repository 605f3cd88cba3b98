"""``Cache-Control: no-store`` on every signed-in page and every API answer, errors too."""

from __future__ import annotations

import pytest

from tests.api.conftest import new_key
from tests.factories import make_link, make_user
from tests.helpers import AuthActions, csrf_from

SIGNED_IN_PAGES = [
    "/",
    "/setup",
    "/setup/production/settings",
    "/setup/production/dns",
    "/setup/production/connect-links",
    "/links",
    "/audit",
    "/staff",
    "/staff/1",
    "/api-keys",
    "/jobs",
    "/destinations",
    # Error pages that a signed-in person sees: 404s of every kind.
    "/no-such-page",
    "/staff/99999",
    "/links/no-such-link",
    "/setup/no-such-environment/settings",
]


def no_store(response) -> bool:
    return "no-store" in response.headers.get("Cache-Control", "")


@pytest.fixture
def link_uid(configured_app):
    with configured_app.app_context():
        return make_link(whoop_user_id=31).uid


def test_every_signed_in_page_is_no_store(configured_app, operator_client, link_uid):
    for path in [*SIGNED_IN_PAGES, f"/links/{link_uid}"]:
        response = operator_client.get(path)
        assert response.status_code in (200, 404), (path, response.status_code)
        assert no_store(response), path
    # Redirects and refusals that a signed-in person gets.
    assert no_store(operator_client.get("/setup/production"))  # redirect to its step
    refused = operator_client.post("/api-keys", data={"name": "no csrf token"})
    assert refused.status_code == 400 and no_store(refused)
    not_allowed = operator_client.put("/")
    assert not_allowed.status_code == 405 and no_store(not_allowed)
    # Even a JSON error for a signed-in browser.
    status = operator_client.get("/setup/production/dns/status")
    assert no_store(status)


def test_support_staff_pages_and_their_403s_are_no_store(configured_app, link_uid):
    with configured_app.app_context():
        make_user("support")
    client = configured_app.test_client()
    AuthActions(client).login("support@example.com", "support-password")
    page = client.get(f"/links/{link_uid}")
    assert page.status_code == 200 and no_store(page)
    forbidden = client.get("/jobs")
    assert forbidden.status_code == 403 and no_store(forbidden)


def test_signing_in_and_out_are_no_store(app, client, auth):
    with app.app_context():
        make_user("operator")
    signed_in = auth.login()
    assert signed_in.status_code in (302, 303) and no_store(signed_in)
    assert no_store(client.get("/"))
    # After signing out the pages are public again: the login page may be cached.
    auth.logout()
    assert not no_store(client.get("/login"))


def test_public_pages_and_assets_keep_their_caching(configured_app, operator_client):
    anonymous = configured_app.test_client()
    for path in ("/login", "/healthz"):
        response = anonymous.get(path)
        assert response.status_code == 200 and not no_store(response), path
    # Assets are revalidated by ETag, for signed-in people too: nothing private in them.
    for path in ("/static/whoopadmin.js", "/bootstrap/static/css/bootstrap.min.css"):
        for client in (anonymous, operator_client):
            with client.get(path) as response:  # a file: close it
                assert response.status_code == 200 and not no_store(response), path
                etag = response.headers["ETag"]
            with client.get(path, headers={"If-None-Match": etag}) as again:
                assert again.status_code == 304, path
    # The connect page an end user sees, on the connection's subdomain.
    from tests.api.support import ApiClient

    key = new_key(configured_app)
    session = ApiClient(configured_app, key).post(
        "/connect-sessions", json={"connection": "production", "reference_id": "u-1"}
    )
    path = session.json["url"].removeprefix("https://whoop.acme.test")
    page = anonymous.get(path, base_url="https://whoop.acme.test")
    assert page.status_code == 200
    assert "no-store" not in page.headers.get("Cache-Control", "")


def test_every_api_answer_is_no_store(configured_app, link_uid):
    from tests.api.support import ApiClient

    key = new_key(configured_app)
    api = ApiClient(configured_app, key)
    answers = [
        api.get(f"/users/{link_uid}"),
        api.get("/users?reference_id=nobody"),
        api.get("/users/no-such-user", validate=False),
        api.get("/openapi.json", validate=False),
        api.post("/connect-sessions", json={"connection": "production", "reference_id": "r"}),
        api.post("/connect-sessions", json={"connection": "nope"}, validate=False),
        api.post("/connect-sessions", data=b"not json", validate=False),
        api.open("PUT", "/users", validate=False),
        api.get("/no-such-endpoint", validate=False),
        # On a connection's host the API does not exist: that 404 too.
        api.get(f"/users/{link_uid}", base_url="https://whoop.acme.test", validate=False),
        ApiClient(configured_app, None).get("/users", validate=False),
        ApiClient(configured_app, "wrong-key").get("/users", validate=False),
        ApiClient(configured_app, "ünïcode-kéy").get("/users", validate=False),
    ]
    statuses = set()
    for response in answers:
        statuses.add(response.status_code)
        assert no_store(response), (response.request.path, response.status_code)
    assert {200, 201, 400, 401, 404, 405} <= statuses


def test_the_signed_in_login_form_page_for_an_expired_csrf_is_no_store(
    configured_app, operator_client
):
    """A form error page re-rendered for a signed-in operator (a 400 with the form)."""
    page = operator_client.get("/setup/new")
    token = csrf_from(page.get_data(as_text=True))
    response = operator_client.post(
        "/setup/new", data={"environment": "", "display_name": "", "csrf_token": token}
    )
    assert response.status_code == 400 and no_store(response)
