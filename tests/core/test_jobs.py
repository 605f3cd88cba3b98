"""Queues, the app-context job class, and the worker command."""

from rq import Queue

from whoopadmin.extensions import db
from whoopadmin.jobs import QUEUES, get_queue
from whoopadmin.redisconn import get_redis
from whoopadmin.setup.models import Connection


def test_queues_in_priority_order():
    assert QUEUES[:5] == ("webhooks", "refresh", "sync", "deliveries", "backfill")


def test_unknown_queue_is_refused(app, runner):
    result = runner.invoke(args=["worker", "nope", "--burst"])
    assert result.exit_code == 2
    assert "unknown queue nope" in result.output
    with app.app_context():
        try:
            get_queue("nope")
        except ValueError as exc:
            assert "unknown queue" in str(exc)
        else:
            raise AssertionError("get_queue accepted an unknown queue")


def test_worker_command_runs_jobs_in_an_app_context(wizard, runner):
    wizard.create()
    wizard.subdomain("production", "whoop.acme.test")  # queues a DNS check
    app = wizard.app
    with app.app_context():
        assert Queue("domains", connection=get_redis(app)).count == 1
    # A forking worker: the job runs in a child process with its own app context.
    result = runner.invoke(args=["worker", "domains", "--burst"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert Queue("domains", connection=get_redis(app)).count == 0
        connection = db.session.scalar(db.select(Connection))
        assert connection.dns_checked_at is not None
        assert connection.dns_attempts == 1


def test_worker_without_fork_runs_jobs_in_its_own_process(wizard, runner):
    wizard.create()
    wizard.subdomain("production", "whoop.acme.test")
    app = wizard.app
    result = runner.invoke(args=["worker", "domains", "--burst", "--no-fork"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert Queue("domains", connection=get_redis(app)).count == 0
        assert db.session.scalar(db.select(Connection)).dns_attempts == 1
