"""Drives the erasure operations to every status the document lists (used by
test_openapi's test_every_documented_response_is_produced_and_valid)."""

from __future__ import annotations

from tests.api.conftest import new_key
from tests.api.support import ApiClient
from tests.factories import make_link
from whoopadmin.extensions import db


def drive(app, api, anonymous, narrow, record) -> None:
    """Produce each erasure response; ``record(path, method, response)`` notes it."""
    with app.app_context():
        keep = make_link(whoop_user_id=901, reference_id="erase-keep").uid
        gone = make_link(whoop_user_id=902, reference_id="erase-gone").uid
        db.session.commit()
    reader = ApiClient(app, new_key(app, "erasure-reader", permissions=["read"]))
    connector = ApiClient(app, new_key(app, "erasure-connector", permissions=["connect"]))
    user, erasure = "/users/{user_id}", "/users/{user_id}/erasure"
    # GET before any request: 404 no_erasure; bad ids, no key, no permission.
    for client, target in ((api, keep), (api, "a%0Ab"), (anonymous, keep), (connector, keep)):
        record(erasure, "get", client.get(f"/users/{target}/erasure"))
    record(erasure, "delete", api.delete(f"/users/{keep}/erasure"))  # 409 not scheduled
    record(user, "delete", api.delete(f"/users/{keep}?erase=maybe"))  # 400
    record(user, "delete", api.delete(f"/users/{keep}?erase=true"))  # 202 scheduled
    record(user, "delete", api.delete(f"/users/{keep}?erase=true"))  # 409 pending
    record(erasure, "get", api.get(f"/users/{keep}/erasure"))  # 200
    for client, target in ((reader, keep), (anonymous, keep), (api, "a%0Ab"), (api, "nope")):
        record(erasure, "delete", client.delete(f"/users/{target}/erasure"))
    record(erasure, "delete", api.delete(f"/users/{keep}/erasure"))  # 200 undone
    record(user, "delete", api.delete(f"/users/{gone}?erase=true&grace_days=0"))  # 202 done
    record(user, "delete", api.delete(f"/users/{gone}?erase=true"))  # 410
    record(erasure, "get", api.get(f"/users/{gone}/erasure"))  # 410
    record(erasure, "delete", api.delete(f"/users/{gone}/erasure"))  # 410
    assert narrow is not None
