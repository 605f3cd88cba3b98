"""Token refresh against the sandbox: proactive, lazy, invalid_grant, failures, races."""

import multiprocessing
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import run_jobs
from tests.helpers import spend_refresh_token, token_works
from whoopadmin.audit import utcnow
from whoopadmin.connect.models import Link, LinkEvent
from whoopadmin.extensions import db
from whoopadmin.sync import jobs, tokens


def _link(app, link_id) -> Link:
    with app.app_context():
        link = db.session.get(Link, link_id)
        link.access_token_plain = link.access_token
        link.refresh_token_plain = link.refresh_token
        db.session.expunge(link)
        return link


def _events(app, link_id):
    with app.app_context():
        return [
            (e.kind, e.reason)
            for e in db.session.scalars(
                sa.select(LinkEvent).where(LinkEvent.link_id == link_id).order_by(LinkEvent.id)
            )
        ]


def _expire_soon(app, link_id, minutes=5):
    with app.app_context():
        db.session.get(Link, link_id).access_expires_at = utcnow() + timedelta(minutes=minutes)
        db.session.commit()


def test_fresh_token_is_not_refreshed(configured_app, linked):
    before = _link(configured_app, linked)
    with configured_app.app_context():
        assert tokens.refresh_link(linked, "manual") == "not_needed"
    assert _link(configured_app, linked).token_version == before.token_version


def test_proactive_refresh_via_cron_and_worker(configured_app, linked, sandbox):
    before = _link(configured_app, linked)
    _expire_soon(configured_app, linked)
    with configured_app.app_context():
        assert jobs.refresh_due() == 1
    run_jobs(configured_app, ("refresh",))
    after = _link(configured_app, linked)
    assert after.token_version == before.token_version + 1
    assert after.access_expires_at > utcnow() + timedelta(minutes=50)
    assert after.last_refresh_result == "ok" and after.status == "active"
    assert after.access_token_plain != before.access_token_plain
    assert token_works(sandbox, after.access_token_plain)
    assert not token_works(sandbox, before.access_token_plain)  # WHOOP kills the old one
    assert ("token_refresh", "scheduled") in _events(configured_app, linked)


def test_forced_refresh(configured_app, linked):
    with configured_app.app_context():
        assert tokens.refresh_link(linked, "support", force=True) == "refreshed"


def test_invalid_grant_means_reauth_required(configured_app, linked, sandbox):
    link = _link(configured_app, linked)
    # Someone used the refresh token behind our back: it is single use.
    spend_refresh_token(configured_app, sandbox, link.refresh_token_plain)
    with configured_app.app_context():
        assert tokens.refresh_link(linked, "manual", force=True) == "reauth_required"
    after = _link(configured_app, linked)
    assert after.status == "reauth_required" and "invalid_grant" in after.status_reason
    assert ("reauth_required", "invalid_grant") in _events(configured_app, linked)
    with configured_app.app_context():
        assert jobs.refresh_due() == 0  # no more attempts on a dead link


def test_network_failures_then_error(make_app, wizard_config, configured_app, linked):
    broken = make_app(**dict(wizard_config, WHOOP_TOKEN_URL="http://127.0.0.1:1/token"))
    with broken.app_context():
        for n in range(1, tokens.MAX_FAILURES + 1):
            with pytest.raises(tokens.RefreshFailed):
                tokens.refresh_link(linked, "manual", force=True)
            link = db.session.get(Link, linked, populate_existing=True)
            assert link.refresh_failures == n
            assert link.status == ("error" if n >= tokens.MAX_FAILURES else "active")
    # A later success clears the error.
    with configured_app.app_context():
        assert tokens.refresh_link(linked, "manual", force=True) == "refreshed"
    after = _link(configured_app, linked)
    assert after.status == "active" and after.refresh_failures == 0


def test_sandbox_5xx_is_transient(configured_app, linked, sandbox):
    sandbox.state.set_faults({"error_rate": 1.0, "include_oauth": True})
    try:
        with configured_app.app_context(), pytest.raises(tokens.RefreshFailed):
            tokens.refresh_link(linked, "manual", force=True)
    finally:
        sandbox.state.set_faults({"error_rate": 0.0})
    assert _link(configured_app, linked).status == "active"


def test_refresh_race_threads_and_processes(configured_app, linked, sandbox, make_app):
    """8 concurrent refreshes (4 threads, 4 processes): one token request, link stays active."""
    before = _link(configured_app, linked)
    version = before.token_version
    start_at = time.time() + 3.0
    results = []

    def in_thread():
        with configured_app.app_context():
            time.sleep(max(0.0, start_at - time.time()))
            results.append(tokens.refresh_link(linked, "race-thread", seen_version=version))

    from tests.sync.refresh_child import refresh_in_process

    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    config = {
        key: configured_app.config[key]
        for key in (
            "SECRET_KEY",
            "ENCRYPTION_KEYS",
            "DATABASE_URL",
            "REDIS_URL",
            "WHOOP_TOKEN_URL",
            "WHOOP_API_BASE",
            "WHOOP_AUTH_URL",
            "DNS_NAMESERVERS",
            "CNAME_TARGET",
            "VALIDATION_DOMAIN",
        )
    }
    config.update(TESTING=True, INSTANCE_PATH=configured_app.instance_path)
    processes = [
        context.Process(target=refresh_in_process, args=(config, linked, version, start_at, out))
        for _ in range(4)
    ]
    threads = [threading.Thread(target=in_thread) for _ in range(4)]
    for worker in processes + threads:
        worker.start()
    for thread in threads:
        thread.join(60)
    results += [out.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(30)
    assert sorted(results) == ["not_needed"] * 7 + ["refreshed"], results
    after = _link(configured_app, linked)
    assert after.status == "active"
    assert after.token_version == version + 1  # exactly one refresh was stored
    kinds = [k for k, _ in _events(configured_app, linked)]
    assert kinds.count("token_refresh") == 1 and "token_refresh_failed" not in kinds
    assert token_works(sandbox, after.access_token_plain)


def test_lazy_refresh_on_401(configured_app, linked, sandbox):
    from whoopadmin.whoop.client import WhoopClient

    before = _link(configured_app, linked)
    # WHOOP forgets the access token (an expiry we did not predict): the next call is a 401.
    sandbox.state.clock.offset_ms = 2 * 3600 * 1000
    try:
        with (
            configured_app.app_context(),
            WhoopClient(sandbox.api_base, tokens.LinkTokens(linked), timeout=5) as client,
        ):
            profile = client.profile()
    finally:
        sandbox.state.clock.offset_ms = 0
    assert profile["user_id"] == before.whoop_user_id
    after = _link(configured_app, linked)
    assert after.token_version == before.token_version + 1
    assert ("token_refresh", "unauthorized") in _events(configured_app, linked)
