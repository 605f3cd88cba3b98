"""The data API in the OpenAPI document: every documented response produced and valid, and
the validation of the answers is real (a wrong answer fails it)."""

from __future__ import annotations

import copy
import json

import pytest

from tests.api.support import ApiClient, validate_response
from tests.data.conftest import new_key
from whoopadmin.api.openapi import document
from whoopadmin.data.openapi import PATHS


def test_every_documented_data_response_is_produced_and_valid(configured_app, backfilled, api):
    anonymous = ApiClient(configured_app, "wa_wrong")
    writer = ApiClient(configured_app, new_key(configured_app, "writer", permissions=["write"]))
    seen: set[tuple[str, str, str]] = set()
    nobody = "0" * 32
    cases = {
        "/users/{user_id}/{data_type}": [
            (api, f"/users/{backfilled}/sleep", {"format": "both", "limit": 2}),
            (api, f"/users/{backfilled}/body", {}),
            (api, f"/users/{backfilled}/sleep", {"start": "later"}),
            (api, f"/users/{backfilled}/sleep", {"cursor": "forged"}),
            (anonymous, f"/users/{backfilled}/sleep", {}),
            (writer, f"/users/{backfilled}/sleep", {}),
            (api, f"/users/{nobody}/sleep", {}),
            (api, f"/users/{backfilled}/steps", {}),
        ],
        "/users/{user_id}/daily": [
            (api, f"/users/{backfilled}/daily", {}),
            (api, f"/users/{backfilled}/daily", {"start": "2026-02-01", "end": "2026-01-01"}),
            (anonymous, f"/users/{backfilled}/daily", {}),
            (writer, f"/users/{backfilled}/daily", {}),
            (api, f"/users/{nobody}/daily", {}),
        ],
        "/users/{user_id}/status": [
            (api, f"/users/{backfilled}/status", {}),
            (api, "/users/a%0Ab/status", {}),
            (anonymous, f"/users/{backfilled}/status", {}),
            (writer, f"/users/{backfilled}/status", {}),
            (api, f"/users/{nobody}/status", {}),
        ],
    }
    for path, calls in cases.items():
        for client, target, query in calls:
            response = client.get(target, query_string=query)  # validated by the client
            seen.add((path, "get", str(response.status_code)))
    documented = {
        (path, method, status)
        for path, item in document()["paths"].items()
        if path in PATHS
        for method, operation in item.items()
        for status in operation["responses"]
    }
    assert documented - seen == set(), "documented responses never produced"
    assert seen - documented == set(), "responses the document does not list"


@pytest.mark.parametrize(
    ("path", "mutate"),
    [
        ("sleep", lambda b: b["records"][0].pop("provider")),
        ("sleep", lambda b: b["records"][0].update(provider="fitbit")),
        ("sleep", lambda b: b["records"][0].update(type="steps")),
        ("sleep", lambda b: b["records"][0]["indicators"][0].update(unit=5)),
        ("sleep", lambda b: b["records"][0].update(extra=1)),
        ("sleep", lambda b: b.update(next_cursor=5)),
        ("daily", lambda b: b["days"][0].update(strain="high")),
        ("daily", lambda b: b["days"][0].pop("date")),
        ("status", lambda b: b["types"][0].update(records=-1)),
        ("status", lambda b: b["backfill"].update(progress=2)),
        ("status", lambda b: b["backfill"].update(status="paused")),
    ],
)
def test_validation_is_real(configured_app, backfilled, api, path, mutate):
    response = api.get(f"/users/{backfilled}/{path}")
    original = response.get_data()
    broken = copy.deepcopy(json.loads(original))
    mutate(broken)
    response.set_data(json.dumps(broken))
    with pytest.raises(Exception):  # noqa: B017 - any validation error will do
        validate_response(response)
    response.set_data(original)
    validate_response(response)
