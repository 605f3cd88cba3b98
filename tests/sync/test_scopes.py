"""Scopes never shrink silently: a refresh asks for what was granted, a narrower grant is on
the timeline, and WHOOP's ``insufficient_scope`` turns the link ``error`` (delivered)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.conftest import run_jobs
from tests.connect.support import add_destination, deliveries, events, links
from tests.helpers import post_webhook
from whoopadmin.connect.models import Link
from whoopadmin.extensions import db
from whoopadmin.sync import jobs, tokens
from whoopadmin.sync.models import SyncRun
from whoopadmin.webhooks.models import WebhookEvent
from whoopadmin.whoop import SCOPES

ALL = set(SCOPES)  # what the connect flow asks for, and the sandbox grants


@pytest.fixture
def narrowing(sandbox):
    """The sandbox narrows every refresh's grant by read:sleep (RFC 6749 6), for one test."""
    sandbox.state.set_faults({"refresh_drop_scopes": ["read:sleep"]})
    yield
    sandbox.state.set_faults({})


@pytest.fixture
def honouring(sandbox):
    """A sandbox that grants exactly the scope a refresh asks for, for one test."""
    sandbox.state.update_config({"refresh_honours_scope": True})
    yield
    sandbox.state.update_config({"refresh_honours_scope": False})


def _refresh(app, link_id) -> str:
    with app.app_context():
        return tokens.refresh_link(link_id, "test", force=True)


def test_refresh_asks_for_the_granted_scopes(configured_app, linked, honouring):
    """Against a server that honours the refresh's ``scope``, nothing is lost."""
    for _ in range(2):
        assert _refresh(configured_app, linked) == "refreshed"
    (link,) = links(configured_app)
    assert set(link.scopes.split()) == ALL
    kinds = [e.kind for e in events(configured_app, linked)]
    assert "scopes_narrowed" not in kinds and "scopes_changed" not in kinds


def test_narrowed_refresh_then_insufficient_scope_end_to_end(
    configured_app, linked, connection_id, narrowing, support_client
):
    add_destination(configured_app, connection_id)
    assert _refresh(configured_app, linked) == "refreshed"
    (link,) = links(configured_app)
    assert set(link.scopes.split()) == ALL - {"read:sleep"}
    assert link.status == "active"
    (narrowed,) = [e for e in events(configured_app, linked) if e.kind == "scopes_narrowed"]
    assert narrowed.details["removed"] == ["read:sleep"]

    # The next sync: WHOOP refuses sleeps for lack of scope; the rest is still fetched.
    with configured_app.app_context():
        jobs.reconcile_link(linked)
        outcomes = dict(
            db.session.execute(
                sa.select(SyncRun.type, SyncRun.error).where(SyncRun.link_id == linked)
            ).all()
        )
    assert outcomes["sleep"] == "insufficient_scope"
    assert outcomes["cycle"] is None and outcomes["recovery"] is None
    (link,) = links(configured_app)
    assert link.status == "error"
    assert link.status_reason.startswith("insufficient_scope") and "sleep" in link.status_reason
    assert ("link_error", "insufficient_scope") in [
        (e.kind, e.reason) for e in events(configured_app, linked)
    ]
    (delivered,) = deliveries(configured_app, "connection_error")
    assert delivered["data"]["reason"] == "insufficient_scope"
    assert delivered["data"]["record_type"] == "sleep"

    # Support sees why.
    page = support_client.get(f"/links/{link.uid}").get_data(as_text=True)
    assert 'data-testid="link-status">error' in page
    assert "insufficient_scope: WHOOP refused sleep data" in page

    # A refresh cannot cure it, and a second sync does not deliver it again.
    assert _refresh(configured_app, linked) == "refreshed"
    with configured_app.app_context():
        jobs.reconcile_link(linked)
    (link,) = links(configured_app)
    assert link.status == "error" and link.status_reason.startswith("insufficient_scope")
    assert len(deliveries(configured_app, "connection_error")) == 1


def test_a_webhook_for_a_lost_scope_fails_cleanly(
    configured_app, linked, member, sandbox, narrowing
):
    assert _refresh(configured_app, linked) == "refreshed"
    sleep_id = sandbox.state.data(member.user_id).sleeps.records[0]["id"]
    event = {"user_id": member.user_id, "id": sleep_id, "type": "sleep.updated", "trace_id": "t1"}
    hook = post_webhook(configured_app.test_client(), configured_app.whoop_app.client_secret, event)
    assert hook.status_code == 200
    run_jobs(configured_app, ("webhooks",))
    with configured_app.app_context():
        stored = db.session.scalar(sa.select(WebhookEvent))
        assert stored.status == "failed" and "insufficient scope" in stored.result
        assert db.session.get(Link, linked).status == "error"


@pytest.mark.parametrize(
    "stored, answer, kept",
    [
        ("offline read:profile", {}, "offline read:profile"),  # no scope: keep
        ("offline read:profile", {"scope": ""}, "offline read:profile"),
        ("offline read:profile", {"scope": 42}, "offline read:profile"),
        ("offline read:profile", {"scope": "read:profile offline"}, "offline read:profile"),
        ("offline read:profile", {"scope": "x" * 600}, "offline read:profile"),
        ("offline read:profile", {"scope": "offline"}, "offline"),
        (None, {"scope": "read:sleep offline"}, "offline read:sleep"),
    ],
)
def test_stored_scopes_change_only_with_a_different_grant(stored, answer, kept):
    assert tokens.granted_scopes(stored, answer) == kept
