"""Helpers for the API tests: a bearer-key client that checks every answer against the
OpenAPI document, and a scan of every database row for a secret."""

from __future__ import annotations

import json

import sqlalchemy as sa
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from werkzeug.wrappers import Request

from whoopadmin.api.openapi import document
from whoopadmin.extensions import db

HOST = "whoop.acme.test"
ORIGINS = ["https://app.acme.test", "http://localhost:3000"]
SCHEMES = ["acmehealth"]

_OPENAPI: OpenAPI | None = None


def openapi() -> OpenAPI:
    """The API's OpenAPI document, loaded once (it is a constant)."""
    global _OPENAPI
    if _OPENAPI is None:
        _OPENAPI = OpenAPI.from_dict(document())
    return _OPENAPI


def validate_response(response) -> None:
    """Fail unless ``response`` (a test-client response) is JSON that the document allows."""
    assert response.mimetype == "application/json", (response.status, response.data[:200])
    assert b"<html" not in response.data.lower()
    json.loads(response.data)  # a JSON body, whatever the status
    # The request's body was read by the app; response validation needs only its route.
    sent = response.request
    request = Request.from_values(
        base_url=sent.host_url,
        path=sent.path,
        query_string=sent.query_string.decode("latin-1"),
        method=sent.method,
    )
    openapi().validate_response(WerkzeugOpenAPIRequest(request), WerkzeugOpenAPIResponse(response))


class ApiClient:
    """A test client that sends ``Authorization: Bearer <key>`` and checks every answer."""

    def __init__(self, app, key: str | None, **client_kwargs) -> None:
        # A client of its own: no admin session cookie can help an API call through.
        self.client = app.test_client(**client_kwargs)
        self.key = key

    def open(self, method: str, path: str, *, validate: bool = True, headers=None, **kwargs):
        headers = dict(headers or {})
        if self.key is not None:
            headers.setdefault("Authorization", f"Bearer {self.key}")
        response = self.client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)
        assert response.status_code != 500, response.data
        if validate:
            validate_response(response)
        return response

    def get(self, path: str, **kwargs):
        return self.open("GET", path, **kwargs)

    def post(self, path: str, **kwargs):
        return self.open("POST", path, **kwargs)

    def delete(self, path: str, **kwargs):
        return self.open("DELETE", path, **kwargs)


def rows_containing(needle: str) -> list[tuple[str, str]]:
    """Every (table, column) whose stored value contains ``needle`` (call in an app context)."""
    found = []
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)).mappings():
                for column, value in row.items():
                    if value is not None and needle in str(value):
                        found.append((table.name, column))
    return found


def count(model) -> int:
    """Rows in ``model``'s table (call in an app context)."""
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))
