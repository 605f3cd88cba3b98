"""The dashboard, the jobs page and /metrics."""

import time

import pytest
from rq import Queue
from rq.registry import FailedJobRegistry

from tests.conftest import run_jobs
from tests.factories import make_link, make_user
from tests.helpers import AuthActions, csrf_from, post_webhook
from whoopadmin.redisconn import get_redis
from whoopadmin.webhooks.handoff import flush_all


def _webhook(app, secret, user_id=777):
    event = {
        "user_id": user_id,
        "id": "a",
        "type": "sleep.updated",
        "trace_id": f"t-{time.monotonic_ns()}",
    }
    return post_webhook(app.test_client(), secret, event)


def test_dashboard_calls_out_signature_failures(configured_app, operator_client):
    with configured_app.app_context():
        make_link(whoop_user_id=777)
    assert _webhook(configured_app, configured_app.whoop_app.client_secret).status_code == 200
    page = operator_client.get("/").get_data(as_text=True)
    assert 'data-environment="production"' in page
    assert "1</strong> webhook received in the last 24 h" in page
    assert 'data-testid="signature-failures"' not in page
    for _ in range(2):
        assert _webhook(configured_app, "a-wrong-secret").status_code == 401
    page = operator_client.get("/").get_data(as_text=True)
    assert "2 webhooks failed the signature check" in page
    assert "bad signature 2" in page
    assert configured_app.whoop_app.client_secret not in page


def test_dashboard_for_support_hides_setup_links(configured_app):
    with configured_app.app_context():
        make_user("support")
    client = configured_app.test_client()
    AuthActions(client).login("support@example.com", "support-password")
    page = client.get("/").get_data(as_text=True)
    assert 'data-environment="production"' in page and "/setup/production" not in page


@pytest.fixture
def failed_job(configured_app):
    with configured_app.app_context():
        queue = Queue("sync", connection=get_redis(configured_app))
        job = queue.enqueue("whoopadmin.no_such_module.no_such_job", 1, job_id="doomed")
    run_jobs(configured_app, ("sync",))
    return job.id


def test_jobs_page_retry_and_delete(configured_app, operator_client, failed_job):
    page = operator_client.get("/jobs").get_data(as_text=True)
    assert "<code>doomed</code>" in page and 'data-queue="sync"' in page
    assert "whoopadmin.setup.jobs.check_due_domains" in page  # the cron schedule
    token = csrf_from(page)
    retried = operator_client.post("/jobs/sync/doomed/retry", data={"csrf_token": token})
    assert retried.headers["Location"] == "/jobs"
    with configured_app.app_context():
        redis = get_redis(configured_app)
        assert [j.id for j in Queue("sync", connection=redis).jobs] == ["doomed"]
    run_jobs(configured_app, ("sync",))  # fails again
    # Delete asks first: the one-click post (or a GET) only shows what will happen.
    for asked in (
        operator_client.get("/jobs/sync/doomed/delete"),
        operator_client.post("/jobs/sync/doomed/delete", data={"csrf_token": token}),
    ):
        assert asked.status_code == 200
        assert "Remove failed job doomed from the sync queue" in asked.get_data(as_text=True)
    with configured_app.app_context():
        assert FailedJobRegistry("sync", connection=get_redis(configured_app)).count == 1
    confirm = {"csrf_token": token, "confirm": "yes"}
    deleted = operator_client.post("/jobs/sync/doomed/delete", data=confirm)
    assert deleted.headers["Location"] == "/jobs"
    with configured_app.app_context():
        assert FailedJobRegistry("sync", connection=get_redis(configured_app)).count == 0
    assert operator_client.post("/jobs/sync/doomed/delete", data=confirm).status_code == 404
    assert (
        operator_client.post("/jobs/sync/doomed/delete", data={"confirm": "yes"}).status_code == 400
    )
    assert (
        operator_client.post("/jobs/nope/doomed/retry", data={"csrf_token": token}).status_code
        == 404
    )
    assert operator_client.post("/jobs/sync/doomed/retry").status_code == 400


def test_jobs_page_is_for_operators(configured_app, failed_job):
    with configured_app.app_context():
        make_user("support")
    client = configured_app.test_client()
    AuthActions(client).login("support@example.com", "support-password")
    assert client.get("/jobs").status_code == 403


def test_metrics(configured_app):
    with configured_app.app_context():
        make_link(whoop_user_id=777)
    _webhook(configured_app, configured_app.whoop_app.client_secret)
    _webhook(configured_app, "wrong")
    flush_all()  # the accepted webhook's web process queues it within 50 ms
    client = configured_app.test_client()
    text = client.get("/metrics").get_data(as_text=True)
    assert (
        'whoopadmin_webhooks_received_total{environment="production",status="received"} 1' in text
    )
    assert (
        'whoopadmin_webhooks_rejected_total{environment="production",reason="bad_signature"} 1'
        in text
    )
    assert 'whoopadmin_links{status="active"} 1' in text
    assert 'whoopadmin_queue_jobs{queue="webhooks"} 1' in text
    refused = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert refused.status_code == 403


def test_metrics_count_sync_jobs(configured_app, linked):
    run_jobs(configured_app, ("backfill",))
    text = configured_app.test_client().get("/metrics").get_data(as_text=True)
    assert 'whoopadmin_sync_runs_total{type="sleep",outcome="ok"} 1' in text
    assert 'whoopadmin_sync_job_seconds_count{type="cycle"} 1' in text
    assert "whoopadmin_token_refreshes_total" in text
