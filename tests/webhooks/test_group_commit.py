"""Group commit (PostgreSQL): concurrent webhooks stored together, each 2xx only once its
row is durable; a failed batch answers 5xx to every request in it. The durability checks
run on SQLite too (inline commits there)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from tests.webhooks.test_ingest import USER, Hook
from whoopadmin.extensions import db
from whoopadmin.webhooks import groupcommit
from whoopadmin.webhooks.models import WebhookEvent


@pytest.fixture
def hook(configured_app):
    from tests.factories import make_link

    with configured_app.app_context():
        make_link(whoop_user_id=USER)
    return Hook(configured_app)


def stored(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(sa.select(WebhookEvent.trace_id)))


def post_many(hook: Hook, bodies: list[bytes], threads: int = 16):
    """Post every body at once from ``threads`` threads; (trace id, status, json) each."""

    def one(body: bytes):
        client = hook.app.test_client()
        old, hook.client = hook.client, client  # Hook.post uses .client: one per thread
        try:
            response = Hook.post(_Bound(hook, client), body)
        finally:
            hook.client = old
        return json.loads(body)["trace_id"], response.status_code, response.get_data(as_text=True)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, bodies))


class _Bound(Hook):
    def __init__(self, hook, client):  # the hook's secret, a client of this thread's own
        self.app, self.client, self.secret = hook.app, client, hook.secret


def test_concurrent_posts_are_each_stored_once(hook):
    bodies = [hook.body(trace_id=f"burst-{n}", id=f"obj-{n}") for n in range(120)]
    bodies += bodies[:20]  # redeliveries, racing their first delivery
    answers = post_many(hook, bodies)
    assert {status for _, status, _ in answers} == {200}
    rows = stored(hook.app)
    assert len(rows) == len(set(rows)) == 120
    assert {trace for trace, _, _ in answers} == set(rows)
    outcomes = [json.loads(text)["status"] for _, _, text in answers]
    assert outcomes.count("accepted") == 120 and outcomes.count("duplicate") == 20


def test_requests_beyond_one_statement_wait_for_their_own_batch(hook, monkeypatch):
    """More rows than one statement takes: the rest go in the next batch, and their
    requests are answered from that batch's outcome, not the first one's."""
    monkeypatch.setattr(groupcommit, "MAX_BATCH", 3)
    bodies = [hook.body(trace_id=f"over-{n}", id=f"obj-{n}") for n in range(60)]
    answers = post_many(hook, bodies)
    assert {status for _, status, _ in answers} == {200}
    assert [json.loads(text)["status"] for _, _, text in answers] == ["accepted"] * 60
    assert sorted(stored(hook.app)) == sorted(trace for trace, _, _ in answers)


def test_the_raw_body_is_stored(hook):
    body = b'{"user_id": %d, "id": 7, "type": "sleep.updated", "trace_id": "raw-1", "extra": 1.50}'
    assert hook.post(body % USER).status_code == 200
    with hook.app.app_context():
        event = db.session.scalar(sa.select(WebhookEvent).where(WebhookEvent.trace_id == "raw-1"))
        assert event.body["extra"] == 1.5 and event.body["id"] == 7
        assert event.object_id == "7"
        if db.engine.dialect.name == "postgresql":  # the very bytes, in a json column
            text = db.session.scalar(sa.text("SELECT body::text FROM webhook_events"))
            assert text.encode() == body % USER


def test_bodies_postgresql_json_would_refuse_are_stored_re_encoded(hook):
    """Python's json takes NaN; PostgreSQL's does not. Such a body still gets its 2xx,
    and does not fail the webhooks committed with it."""
    odd = (
        b'{"user_id": %d, "id": "x", "type": "sleep.updated", "trace_id": "nan-1", "score": NaN}'
    ) % USER
    answers = post_many(hook, [odd] + [hook.body(trace_id=f"ok-{n}") for n in range(10)])
    assert {status for _, status, _ in answers} == {200}
    assert set(stored(hook.app)) == {"nan-1", *(f"ok-{n}" for n in range(10))}


def _postgresql(app) -> bool:
    with app.app_context():
        return db.engine.dialect.name == "postgresql"


@pytest.fixture
def poison(hook):
    """PostgreSQL refuses any batch holding a trace id starting ``poison``; a trace id
    ``gate`` waits for advisory lock 4242 (held by the test) inside the committer."""
    if not _postgresql(hook.app):
        pytest.skip("group commit is PostgreSQL's (SQLite commits each webhook inline)")
    with hook.app.app_context(), db.engine.begin() as conn:
        conn.execute(
            sa.text(
                """CREATE OR REPLACE FUNCTION test_poison() RETURNS trigger
                    LANGUAGE plpgsql AS $$ BEGIN
                      IF NEW.trace_id = 'gate' THEN PERFORM pg_advisory_xact_lock(4242); END IF;
                      IF NEW.trace_id LIKE 'poison%' THEN
                        RAISE EXCEPTION 'refused by the test';
                      END IF;
                      RETURN NEW;
                    END $$"""
            )
        )
        conn.execute(
            sa.text(
                "CREATE TRIGGER test_poison BEFORE INSERT ON webhook_events "
                "FOR EACH ROW EXECUTE FUNCTION test_poison()"
            )
        )
    yield hook
    with hook.app.app_context(), db.engine.begin() as conn:
        conn.execute(sa.text("DROP TRIGGER test_poison ON webhook_events"))


def test_a_failed_batch_answers_5xx_to_every_request_in_it(poison):
    hook = poison
    app = hook.app
    with app.app_context():
        engine = db.engine
        committer = groupcommit.committer_for(engine, "ignored")
        holder = engine.connect()
        holder.execute(sa.text("SELECT pg_advisory_lock(4242)"))
    try:
        gate = threading.Thread(target=hook.post, args=(hook.body(trace_id="gate"),))
        gate.start()
        # The committer now waits inside the gate's batch; these gather into the next.
        deadline = time.monotonic() + 20
        waiting = sa.text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        )
        while not holder.scalar(waiting) and time.monotonic() < deadline:
            time.sleep(0.01)
        bodies = [hook.body(trace_id=f"mate-{n}") for n in range(7)]
        bodies.append(hook.body(trace_id="poison-1"))
        with ThreadPoolExecutor(8) as pool:
            futures = [
                pool.submit(
                    committer.store,
                    {
                        "connection_id": _connection_id(app),
                        "trace_id": json.loads(body)["trace_id"],
                        "type": "sleep.updated",
                        "whoop_user_id": USER,
                        "object_id": "o",
                        "status": "received",
                        "result": None,
                        "received_at": _now(),
                        "body": body.decode(),
                    },
                )
                for body in bodies
            ]
            while len(committer._batch.rows) < len(bodies) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(committer._batch.rows) == len(bodies)  # one batch, all eight
            holder.execute(sa.text("SELECT pg_advisory_unlock(4242)"))
            errors = [f.exception(timeout=20) for f in futures]
        gate.join(20)
    finally:
        holder.close()
    assert all(isinstance(e, groupcommit.StoreFailed) for e in errors), errors
    assert set(stored(app)) == {"gate"}  # none of the batch is stored


def test_over_http_a_refused_batch_is_never_acknowledged(poison):
    """Through the app: every 2xx'd trace id is stored; the refused one never gets 2xx."""
    hook = poison
    bodies = [hook.body(trace_id=f"web-{n}") for n in range(60)]
    bodies[30] = hook.body(trace_id="poison-web")
    answers = post_many(hook, bodies)
    rows = set(stored(hook.app))
    for trace, status, body in answers:
        assert status in (200, 503), (trace, status, body)
        if status == 200:
            assert trace in rows
    assert dict((t, s) for t, s, _ in answers)["poison-web"] == 503
    assert "poison-web" not in rows
    assert all("not reachable" in text for _, s, text in answers if s == 503)


def _connection_id(app) -> int:
    from whoopadmin.setup.models import Connection

    with app.app_context():
        return db.session.scalar(sa.select(Connection.id))


def _now():
    from whoopadmin.audit import utcnow

    return utcnow()
