"""Every API route refuses callers without a valid key: 401 JSON with WWW-Authenticate."""

from __future__ import annotations

import pytest

from tests.api.conftest import new_key
from tests.api.support import ApiClient, count, validate_response
from tests.factories import make_connection, make_link
from whoopadmin.api import service
from whoopadmin.api.models import ApiKey
from whoopadmin.connect.models import ConnectSession, Link
from whoopadmin.extensions import db

ROUTES = [
    ("POST", "/connect-sessions", {"json": {"connection": "production", "reference_id": "u1"}}),
    ("GET", "/users?reference_id=user-1", {}),
    ("GET", "/users/{uid}", {}),
    ("DELETE", "/users/{uid}", {}),
]


@pytest.fixture
def link_uid(app):
    with app.app_context():
        connection = make_connection()
        return make_link(connection, whoop_user_id=1, reference_id="user-1").uid


def bad_headers(key: str) -> dict[str, dict[str, str]]:
    return {
        "missing": {},
        "empty": {"Authorization": ""},
        "basic": {"Authorization": "Basic d2FfeDp5"},
        "token-scheme": {"Authorization": f"Token {key}"},
        "no-scheme": {"Authorization": key},
        "scheme-only": {"Authorization": "Bearer"},
        "scheme-space": {"Authorization": "Bearer "},
        "tab": {"Authorization": f"Bearer\t{key}"},
        "two-keys": {"Authorization": f"Bearer {key} {key}"},
        "truncated": {"Authorization": f"Bearer {key[:-1]}"},
        "extended": {"Authorization": f"Bearer {key}A"},
        "other-case": {"Authorization": f"Bearer {key.upper()}"},
        "hash-as-key": {"Authorization": f"Bearer {service._hash(key)}"},
        "unknown": {"Authorization": "Bearer wa_" + "A" * 43},
        "long": {"Authorization": "Bearer wa_" + "A" * 5000},
        "not-ascii": {"Authorization": "Bearer wa_\xe9\xe9\xe9"},
    }


def assert_401(response) -> None:
    assert response.status_code == 401, response.data
    validate_response(response)
    assert response.json["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="whoopadmin"'


@pytest.mark.parametrize(("method", "path", "kwargs"), ROUTES, ids=lambda v: str(v)[:20])
def test_bad_credentials_get_401_json(app, link_uid, method, path, kwargs):
    key = new_key(app)
    api = ApiClient(app, None)
    for name, headers in bad_headers(key).items():
        for accept in ("application/json", "text/html"):
            response = api.open(
                method,
                path.format(uid=link_uid),
                headers={**headers, "Accept": accept},
                validate=False,
                **kwargs,
            )
            assert response.status_code == 401, (name, accept, response.data)
            assert_401(response)
    with app.app_context():
        link = db.session.scalar(db.select(Link))
        assert link.status == "active" and link.access_token == "access-token-value"
        assert count(ConnectSession) == 0


def test_the_right_key_works_and_scheme_is_case_insensitive(app, link_uid):
    key = new_key(app)
    for scheme in ("Bearer", "bearer", "BEARER"):
        api = ApiClient(app, None)
        response = api.get(f"/users/{link_uid}", headers={"Authorization": f"{scheme} {key}"})
        assert response.status_code == 200


def test_revoked_key_gets_401_at_once(app, link_uid):
    key = new_key(app)
    api = ApiClient(app, key)
    assert api.get(f"/users/{link_uid}").status_code == 200
    with app.app_context():
        row = db.session.scalar(db.select(ApiKey))
        service.revoke_key("test", row)
    assert_401(api.get(f"/users/{link_uid}", validate=False))
    assert_401(api.delete(f"/users/{link_uid}", validate=False))
    with app.app_context():
        assert db.session.scalar(db.select(Link)).status == "active"


def test_other_keys_keep_working_after_a_revoke(app, link_uid):
    first, second = new_key(app, "first"), new_key(app, "second")
    with app.app_context():
        row = db.session.scalar(db.select(ApiKey).where(ApiKey.name == "first"))
        service.revoke_key("test", row)
    assert_401(ApiClient(app, first).get(f"/users/{link_uid}", validate=False))
    assert ApiClient(app, second).get(f"/users/{link_uid}").status_code == 200


def test_a_signed_in_operator_still_needs_a_key(app, operator_client, link_uid):
    assert_401(operator_client.get(f"/api/v1/users/{link_uid}"))
    response = operator_client.post(
        "/api/v1/connect-sessions", json={"connection": "production", "reference_id": "u1"}
    )
    assert_401(response)


def test_openapi_document_needs_no_key(app):
    response = ApiClient(app, None).get("/openapi.json")
    assert response.status_code == 200
    assert response.json["openapi"].startswith("3.")


def test_unknown_api_paths_answer_json(app, api_key):
    api = ApiClient(app, api_key)
    for method, path, status in (
        ("GET", "/nope", 404),
        ("GET", "/connect-sessions", 405),
        ("PUT", "/users/abc", 405),
        # An encoded slash in a user id: once a Werkzeug HTML 308 to another URL (merged
        # slashes), now a JSON 404 like any id that names no user.
        ("GET", "/users/%2F0", 404),
        ("DELETE", "/users/%2F0", 404),
        ("POST", "/users/%2F0/backfill", 404),
        ("GET", "/users//0", 404),
        ("GET", "//users/0", 404),
        ("GET", "/users/0/", 404),
        ("GET", "/users/", 404),
    ):
        response = api.open(method, path, validate=False, headers={"Accept": "text/html"})
        assert response.status_code == status, (method, path)
        assert "Location" not in response.headers, (method, path)
        assert response.mimetype == "application/json" and b"<html" not in response.data
        assert set(response.json) >= {"error", "message"}


def test_405_names_the_allowed_methods(app, api_key):
    response = ApiClient(app, api_key).open("PUT", "/users/abc", validate=False)
    assert response.status_code == 405
    assert set(response.headers.get("Allow", "").replace(" ", "").split(",")) >= {"GET", "DELETE"}
