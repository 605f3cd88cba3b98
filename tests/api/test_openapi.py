"""The OpenAPI document: valid OpenAPI 3, in step with the routes, and true of real answers."""

from __future__ import annotations

import copy
import json
import re

import pytest
import sqlalchemy as sa
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest
from openapi_spec_validator import validate
from werkzeug.wrappers import Request

from tests.api import erasure_drive, export_drive
from tests.api.conftest import new_key
from tests.api.support import ApiClient, openapi, validate_response
from tests.factories import make_link
from whoopadmin.api.openapi import document
from whoopadmin.api.views import CONNECT_FIELDS, bp
from whoopadmin.data.openapi import PATHS as DATA_PATHS
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def documented_operations() -> set[tuple[str, str]]:
    doc = document()
    return {
        (path, method.upper())
        for path, item in doc["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch")
    }


def routed_operations(app) -> set[tuple[str, str]]:
    prefix = bp.url_prefix
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] != bp.name:
            continue
        assert rule.rule.startswith(prefix)
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule[len(prefix) :])
        found |= {(path, method) for method in rule.methods - IGNORED_METHODS}
    return found


def test_document_is_valid_openapi_3(app):
    doc = document()
    validate(doc)  # raises on any error
    assert doc["openapi"].startswith("3.0")
    served = ApiClient(app, None).get("/openapi.json")
    assert served.status_code == 200
    assert served.json == json.loads(json.dumps(doc))
    validate(served.json)


def test_document_and_routes_match(app):
    assert document()["servers"] == [{"url": bp.url_prefix}]
    routed, documented = routed_operations(app), documented_operations()
    assert routed, "the api blueprint has no routes"
    assert routed - documented == set(), "routes missing from the document"
    assert documented - routed == set(), "documented operations with no route"


def test_path_parameters_match_the_rules(app):
    doc = document()
    for path, item in doc["paths"].items():
        names = set(re.findall(r"{([a-z_]+)}", path))
        for method, operation in item.items():
            params = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert params == names, (path, method)


def test_documented_security_is_enforced(app, api_key):
    """Operations with security refuse a keyless call (401); the others answer it."""
    doc = document()
    anonymous = ApiClient(app, None)
    for path, method in documented_operations():
        operation = doc["paths"][path][method.lower()]
        secured = operation.get("security", doc["security"]) != []
        concrete = path.replace("{user_id}", "nobody").replace("{data_type}", "sleep")
        response = anonymous.open(method, concrete, query_string={"reference_id": "r"})
        if secured:
            assert response.status_code == 401, (path, method)
            assert "401" in operation["responses"]
        else:
            assert response.status_code == 200, (path, method)


def test_request_schema_names_the_fields_the_view_accepts():
    schema = document()["components"]["schemas"]["ConnectSessionRequest"]
    assert set(schema["properties"]) == CONNECT_FIELDS
    assert schema["additionalProperties"] is False


def test_accepted_request_bodies_match_the_request_schema(live_app, api_key):
    """What the API accepts, the document allows (openapi-core request validation)."""
    body = {
        "connection": "production",
        "reference_id": "user-1",
        "success_redirect_url": "https://app.acme.test/done",
        "failure_redirect_url": "acmehealth://failed",
        "language": "en-GB",
        "expires_in": 600,
    }
    for sent in (
        body,
        {**body, "connection": 1},
        {"connection": "production", "reference_id": "u"},
    ):
        response = ApiClient(live_app, api_key).post("/connect-sessions", json=sent)
        assert response.status_code == 201
        request = Request.from_values(
            base_url="http://localhost",
            path="/api/v1/connect-sessions",
            method="POST",
            data=json.dumps(sent),
            content_type="application/json",
            headers={"Authorization": f"Bearer {api_key}"},
        )
        openapi().validate_request(WerkzeugOpenAPIRequest(request))


def test_every_documented_response_is_produced_and_valid(live_app, api_key, wizard):
    """Drive each operation to each documented status; every answer validates."""
    wizard.create("staging", "Acme staging")
    with live_app.app_context():
        uid = make_link(whoop_user_id=9, reference_id="r9").uid
        staging = db.session.scalar(
            sa.select(Connection.id).where(Connection.environment == "staging")
        )
    api, anonymous = ApiClient(live_app, api_key), ApiClient(live_app, "wa_wrong")
    # A key that may read, on the staging connection only: 403 for the rest.
    narrow = ApiClient(
        live_app, new_key(live_app, "narrow", connection_ids=[staging], permissions=["read"])
    )
    seen: set[tuple[str, str, str]] = set()

    def record(path, method, response):
        seen.add((path, method, str(response.status_code)))

    good = {"connection": "production", "reference_id": "u"}
    for response in (
        api.post("/connect-sessions", json=good),
        api.post("/connect-sessions", json={**good, "expires_in": 1}),
        anonymous.post("/connect-sessions", json=good),
        api.post("/connect-sessions", json={**good, "connection": "nope"}),
        api.post("/connect-sessions", json={**good, "connection": "staging"}),
        api.post("/connect-sessions", json={**good, "language": "fr"}),
        narrow.post("/connect-sessions", json=good),
        api.post("/connect-sessions", data="connection=production", content_type="text/plain"),
        api.post("/connect-sessions", json={**good, "success_redirect_url": "https://evil.test/"}),
    ):
        record("/connect-sessions", "post", response)
    for response in (
        api.get("/users?reference_id=r9"),
        api.get("/users"),
        anonymous.get("/users?reference_id=r9"),
        ApiClient(live_app, new_key(live_app, "writer", permissions=["write"])).get(
            "/users?reference_id=r9"
        ),
    ):
        record("/users", "get", response)
    backfill = "/users/{user_id}/backfill"
    for client, target, body in (
        (api, uid, {}),
        (api, uid, {"start": "later"}),
        (api, uid, {"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}),
        (anonymous, uid, {}),
        (narrow, uid, {}),
        (api, "nope", {}),
    ):
        record(backfill, "post", client.post(f"/users/{target}/backfill", json=body))
    record(
        backfill, "post", api.post(f"/users/{uid}/backfill", data="x", content_type="text/plain")
    )
    for method in ("get", "delete"):
        for client, target in (
            (api, uid),
            (api, "nope"),
            (api, "a%0Ab"),
            (anonymous, uid),
            (
                ApiClient(
                    live_app, new_key(live_app, f"connect-{method}", permissions=["connect"])
                ),
                uid,
            ),
        ):
            record("/users/{user_id}", method, client.open(method.upper(), f"/users/{target}"))
    # The DELETE above revoked the link: a backfill is now a conflict.
    record(backfill, "post", api.post(f"/users/{uid}/backfill", json={}))
    record("/openapi.json", "get", api.get("/openapi.json"))
    erasure_drive.drive(live_app, api, anonymous, narrow, record)
    export_drive.drive(live_app, api, anonymous, record)

    documented = {
        (path, method, status)
        for path, item in document()["paths"].items()
        for method, operation in item.items()
        for status in operation["responses"]
        if path not in DATA_PATHS  # tests/data/test_data_openapi.py drives those
    }
    assert documented - seen == set(), "documented responses never produced"
    assert seen - documented == set(), "responses the document does not list"


def test_validation_is_real(configured_app, api_key):
    """A response that breaks the document fails validation (the check can fail)."""
    with configured_app.app_context():
        uid = make_link(whoop_user_id=11, reference_id="r11").uid
    response = ApiClient(configured_app, api_key).get(f"/users/{uid}")
    original = response.get_data()
    for mutate in (
        lambda b: b.pop("status"),
        lambda b: b.update(status="paused"),
        lambda b: b.update(whoop_user_id="11"),
        lambda b: b.update(scopes="read:profile"),
        lambda b: b.update(created_at="yesterday"),
    ):
        broken = copy.deepcopy(json.loads(original))
        mutate(broken)
        response.set_data(json.dumps(broken))
        with pytest.raises(Exception):  # noqa: B017 - any validation error will do
            validate_response(response)
    response.set_data(original)
    validate_response(response)
