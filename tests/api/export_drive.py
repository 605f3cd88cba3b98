"""Drives the export operation to every status the document lists (used by
test_openapi's test_every_documented_response_is_produced_and_valid)."""

from __future__ import annotations

import json

from tests.api.conftest import new_key
from tests.api.support import ApiClient
from tests.factories import make_link
from whoopadmin.api.openapi import document
from whoopadmin.connect.models import Link
from whoopadmin.erasure import service as erasure_service
from whoopadmin.extensions import db


def drive(app, api, anonymous, record) -> None:
    """Produce each export response; ``record(path, method, response)`` notes it."""
    with app.app_context():
        here = make_link(whoop_user_id=951, reference_id="export-here").uid
        pending = make_link(whoop_user_id=952, reference_id="export-pending")
        erased = make_link(whoop_user_id=953, reference_id="export-erased")
        pending_uid, erased_uid = pending.uid, erased.uid
        erasure_service.request_erasure("test", db.session.get(Link, pending.id), grace=5)
        erasure_service.request_erasure("test", db.session.get(Link, erased.id), grace=0)
    path = "/users/{user_id}/export"
    content = document()["paths"][path]["get"]["responses"]["200"]["content"]
    for fmt in ("csv", "ndjson", "fhir"):
        response = api.get(f"/users/{here}/export?format={fmt}", validate=False)
        assert response.mimetype in content
        if fmt == "fhir":
            assert json.loads(response.data)["resourceType"] == "Bundle"
        record(path, "get", response)
    connector = ApiClient(app, new_key(app, "export-connector", permissions=["connect"]))
    for client, query in (
        (api, f"{here}/export?format=xml"),  # 400
        (anonymous, f"{here}/export?format=csv"),  # 401
        (connector, f"{here}/export?format=csv"),  # 403
        (api, "nope/export?format=csv"),  # 404
        (api, f"{pending_uid}/export?format=csv"),  # 409
        (api, f"{erased_uid}/export?format=csv"),  # 410
    ):
        record(path, "get", client.get(f"/users/{query}"))
