"""Inbound WHOOP webhooks: verified, stored before the 2xx, deduped, queued; every refusal."""

import json
import time
from datetime import timedelta

import pytest
import redis
import sqlalchemy as sa
from rq import Queue

from tests.factories import make_link
from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.redisconn import get_redis
from whoopadmin.setup.models import Connection
from whoopadmin.webhooks.handoff import flush_all
from whoopadmin.webhooks.models import WebhookEvent, WebhookRejection
from whoopadmin.webhooks.signatures import partner_signature, whoop_signature

PUBLIC = "https://whoop.acme.test"
USER = 424242


@pytest.fixture
def hook(configured_app):
    with configured_app.app_context():
        make_link(whoop_user_id=USER)
    return Hook(configured_app)


class Hook:
    """Posts webhooks as WHOOP would, signed with the connection's client secret."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()
        self.secret = app.whoop_app.client_secret

    def body(self, **overrides):
        event = {
            "user_id": USER,
            "id": "9b2f8c2e-0000-4000-8000-000000000001",
            "type": "sleep.updated",
            "trace_id": f"trace-{time.monotonic_ns()}",
        }
        event.update(overrides)
        return json.dumps(event).encode()

    def post(
        self,
        body=None,
        *,
        secret=None,
        timestamp=None,
        path="/hooks/whoop/push",
        base_url=PUBLIC,
        headers=None,
    ):
        body = self.body() if body is None else body
        timestamp = timestamp or str(int(time.time() * 1000))
        if timestamp.startswith("offset:"):  # relative to now, computed when sent
            timestamp = str(int(time.time() * 1000) + int(timestamp.split(":")[1]))
        sent = {
            "X-WHOOP-Signature-Timestamp": timestamp,
            "X-WHOOP-Signature": whoop_signature(secret or self.secret, timestamp, body),
            "Content-Type": "application/json",
        }
        sent.update(headers or {})
        return self.client.post(path, data=body, headers=sent, base_url=base_url)

    def events(self):
        with self.app.app_context():
            return [
                (e.trace_id, e.type, e.status) for e in db.session.scalars(sa.select(WebhookEvent))
            ]

    def rejections(self):
        with self.app.app_context():
            return {r.reason: r.count for r in db.session.scalars(sa.select(WebhookRejection))}

    def queued(self):
        """The event ids waiting in the webhooks queue, in batches or one per job."""
        flush_all()
        ids = []
        with self.app.app_context():
            for job in Queue("webhooks", connection=get_redis(self.app)).jobs:
                (arg,) = job.args
                ids.extend(arg if job.func_name.endswith("process_events") else [arg])
        return ids


def test_accepted_stored_and_queued(hook):
    response = hook.post(hook.body(trace_id="t-1"))
    assert response.status_code == 200 and response.json == {"status": "accepted"}
    assert hook.events() == [("t-1", "sleep.updated", "received")]
    with hook.app.app_context():
        event_id = db.session.scalar(sa.select(WebhookEvent.id))
    assert hook.queued() == [event_id]


def test_queued_in_the_request_when_batching_is_off(hook):
    hook.app.config["WEBHOOK_QUEUE_DELAY_SECONDS"] = 0
    assert hook.post(hook.body(trace_id="t-0")).json == {"status": "accepted"}
    with hook.app.app_context():
        event_id = db.session.scalar(sa.select(WebhookEvent.id))
        (job,) = Queue("webhooks", connection=get_redis(hook.app)).jobs  # no flush needed
    assert (job.id, job.func_name, job.args) == (
        f"webhook-{event_id}",
        "whoopadmin.webhooks.jobs.process_event",
        (event_id,),
    )


def test_accepted_webhooks_are_queued_in_batches(hook):
    hook.app.config["WEBHOOK_QUEUE_DELAY_SECONDS"] = 2.0  # all five gather in one batch
    for n in range(5):
        assert hook.post(hook.body(trace_id=f"b-{n}")).json == {"status": "accepted"}
    with hook.app.app_context():
        ids = db.session.scalars(sa.select(WebhookEvent.id).order_by(WebhookEvent.id)).all()
    assert hook.queued() == ids
    with hook.app.app_context():
        jobs = Queue("webhooks", connection=get_redis(hook.app)).jobs
    assert [(job.func_name, job.args) for job in jobs] == [
        ("whoopadmin.webhooks.jobs.process_events", (ids,))
    ]


def test_duplicate_trace_is_stored_once(hook):
    body = hook.body(trace_id="same")
    assert hook.post(body).json == {"status": "accepted"}
    assert hook.post(body).json == {"status": "duplicate"}
    assert len(hook.events()) == 1 and len(hook.queued()) == 1


def test_by_client_id_on_any_host(hook):
    path = f"/hooks/whoop/push/{hook.app.whoop_app.client_id}"
    response = hook.post(path=path, base_url="http://localhost")
    assert response.status_code == 200
    assert (
        hook.post(path="/hooks/whoop/push/unknown-client", base_url="http://localhost").status_code
        == 404
    )


def test_ignored_types_get_a_2xx(hook):
    response = hook.post(hook.body(type="cycle.updated", trace_id="t-cycle"))
    assert response.status_code == 200 and response.json == {"status": "ignored"}
    assert hook.events() == [("t-cycle", "cycle.updated", "ignored")]
    assert hook.queued() == []


@pytest.mark.parametrize(
    ("kwargs", "status", "reason"),
    [
        ({"secret": "the-wrong-secret"}, 401, "bad_signature"),
        ({"timestamp": "offset:-360000"}, 401, "stale_timestamp"),
        ({"timestamp": "offset:360000"}, 401, "stale_timestamp"),
        ({"timestamp": "yesterday"}, 401, "bad_timestamp"),
        # Latin-1 superscripts: str.isdigit() says yes, int() says no.
        ({"headers": {"X-WHOOP-Signature-Timestamp": "¹²³"}}, 401, "bad_timestamp"),
        ({"headers": {"X-WHOOP-Signature": ""}}, 401, "missing_signature"),
        ({"body": b"not json"}, 400, "malformed"),
        ({"body": b"[1, 2]"}, 400, "malformed"),
        (
            {
                "body": json.dumps(
                    {"user_id": "1", "id": "x", "type": "t", "trace_id": "t"}
                ).encode()
            },
            400,
            "malformed",
        ),
        (
            {
                "body": json.dumps(
                    {"user_id": USER, "type": "sleep.updated", "trace_id": "t"}
                ).encode()
            },
            400,
            "malformed",
        ),
        (
            {
                "body": json.dumps(
                    {"user_id": 1, "id": "x", "type": "sleep.updated", "trace_id": "t"}
                ).encode()
            },
            404,
            "unknown_user",
        ),
        ({"body": b"x" * (64 * 1024 + 1)}, 413, "oversize"),
    ],
)
def test_rejections_are_4xx_and_counted(hook, kwargs, status, reason):
    response = hook.post(**kwargs)
    assert response.status_code == status
    assert response.json["error"] == reason
    assert hook.events() == []
    assert hook.rejections() == {reason: 1}


def test_signature_failures_are_counted_per_day(hook):
    for _ in range(3):
        hook.post(secret="wrong-secret")
    assert hook.rejections() == {"bad_signature": 3}


def test_signature_over_the_raw_bytes(hook):
    body = hook.body(trace_id="raw")
    reformatted = json.dumps(json.loads(body), indent=2).encode()
    timestamp = str(int(time.time() * 1000))
    response = hook.client.post(
        "/hooks/whoop/push",
        data=reformatted,
        headers={
            "X-WHOOP-Signature-Timestamp": timestamp,
            "X-WHOOP-Signature": whoop_signature(hook.secret, timestamp, body),
        },
        base_url=PUBLIC,
    )
    assert response.status_code == 401


def test_previous_secret_accepted_during_rotation(hook, wizard):
    old = hook.secret
    new_app = hook.app.whoop_app
    wizard.credentials("production", new_app.client_id, "rotated-secret-value-1234")
    assert (
        hook.post(hook.body(trace_id="new"), secret="rotated-secret-value-1234").status_code == 200
    )
    assert hook.post(hook.body(trace_id="old"), secret=old).status_code == 200
    with hook.app.app_context():
        connection = db.session.scalar(sa.select(Connection))
        connection.secret_rotated_at = utcnow() - timedelta(hours=25)
        db.session.commit()
    assert hook.post(hook.body(trace_id="late"), secret=old).status_code == 401


def test_no_webhooks_on_the_admin_host_path(hook):
    response = hook.post(base_url="http://localhost")
    assert response.status_code == 404


def test_revoked_link_events_are_ignored(hook):
    from whoopadmin.connect.models import Link

    with hook.app.app_context():
        db.session.scalar(sa.select(Link)).status = "revoked"
        db.session.commit()
    assert hook.post().json == {"status": "ignored"}
    assert hook.queued() == []


def test_stored_even_when_redis_is_down(hook, make_app, wizard_config, database_url):
    # The same database, a Redis that does not answer: the event must still be stored.
    down = make_app(REDIS_URL="redis://127.0.0.1:1/0", **wizard_config)
    down.whoop_app = hook.app.whoop_app
    broken = Hook(down)
    response = broken.post(broken.body(trace_id="while-down"))
    assert response.status_code == 200
    assert hook.events() == [("while-down", "sleep.updated", "received")]
    assert hook.queued() == []
    # The sweeper queues what was stored but not queued.
    from whoopadmin.webhooks.jobs import sweep_events

    with hook.app.app_context():
        assert sweep_events(min_age_seconds=0) == 1
    assert len(hook.queued()) == 1


def test_partner_webhooks(hook, wizard):
    wizard.credentials(
        "production", hook.app.whoop_app.client_id, "", webhook_signing_secret="partner-signing-1"
    )
    body = json.dumps({"event_type": "lab_requisition.created", "resource_id": "req-1"}).encode()
    good = hook.client.post(
        "/hooks/whoop/partner",
        data=body,
        base_url=PUBLIC,
        headers={"WHOOP-Signed": partner_signature("partner-signing-1", body)},
    )
    assert good.status_code == 204
    bad = hook.client.post(
        "/hooks/whoop/partner",
        data=body,
        base_url=PUBLIC,
        headers={"WHOOP-Signed": partner_signature("other", body)},
    )
    assert bad.status_code == 401 and bad.json["error"] == "bad_signature"
    assert ("lab_requisition.created", "ignored") in [(t, s) for _, t, s in hook.events()]


def test_no_secret_in_responses(hook):
    for kwargs in ({}, {"secret": "wrong"}, {"body": b"{}"}):
        assert hook.secret.encode() not in hook.post(**kwargs).data


def test_redis_really_down_url_is_unreachable():
    client = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    with pytest.raises(redis.RedisError):
        client.ping()
    client.close()


def test_connection_cache_sees_other_processes_changes_after_its_ttl(hook):
    # A change this process makes clears its cache at once (the rotation test above); a
    # change made elsewhere (here: plain SQL, which fires no ORM events) is seen once the
    # cached entry expires.
    hook.app.config["WEBHOOK_CONNECTION_CACHE_SECONDS"] = 2.0
    client_id = hook.app.whoop_app.client_id
    old_path = f"/hooks/whoop/push/{client_id}"
    assert hook.post(hook.body(trace_id="c-1"), path=old_path).status_code == 200
    with hook.app.app_context():
        db.session.execute(sa.text("UPDATE connections SET client_id = 'moved-client'"))
        db.session.commit()
    assert hook.post(hook.body(trace_id="c-2"), path=old_path).status_code == 200  # cached
    time.sleep(2.1)
    assert hook.post(hook.body(trace_id="c-3"), path=old_path).status_code == 404
    new_path = "/hooks/whoop/push/moved-client"
    assert hook.post(hook.body(trace_id="c-4"), path=new_path).status_code == 200
    assert [e[0] for e in hook.events()] == ["c-1", "c-2", "c-4"]


def test_connection_cache_stays_small_under_a_flood_of_unknown_names(hook):
    from whoopadmin.webhooks import service

    with hook.app.test_request_context():
        for n in range(3000):
            assert service.receiver("client_id", f"nobody-{n}") is None
        assert len(service._receivers) <= service._RECEIVERS_MAX
        assert service.receiver("client_id", "x" * 256) is None  # too long to look up


def test_connection_cache_can_be_turned_off(hook):
    from whoopadmin.webhooks import service

    hook.app.config["WEBHOOK_CONNECTION_CACHE_SECONDS"] = 0
    service._receivers.clear()
    assert hook.post().status_code == 200
    assert service._receivers == {}


def test_cached_receiver_never_shows_its_secrets(hook):
    from whoopadmin.webhooks import service

    with hook.app.test_request_context():
        found = service.receiver("client_id", hook.app.whoop_app.client_id)
    assert found is not None and found.secrets == (hook.secret,)
    assert hook.secret not in repr(found) and hook.secret not in str(found)


def test_webhooks_open_no_session_and_skip_the_rate_limiter(hook):
    """Both are skipped for speed on /hooks/whoop/ only; every other page keeps them."""
    from flask import session
    from flask.sessions import SecureCookieSession

    from whoopadmin.extensions import limiter

    app = hook.app
    with app.test_request_context("/hooks/whoop/push", method="POST"):
        assert app.session_interface.is_null_session(session._get_current_object())
    with app.test_request_context("/login"):
        assert isinstance(session._get_current_object(), SecureCookieSession)
    with app.test_request_context("/hooks/whoop/push", method="POST"):
        app.preprocess_request()  # matches the route: the blueprint is known
        assert any(rule() for rule in limiter._request_filters)
    with app.test_request_context("/login"):
        app.preprocess_request()
        assert not any(rule() for rule in limiter._request_filters)
    assert hook.post().status_code == 200  # and webhooks still work end to end


class FlaskRequests:
    """Counts the requests Flask itself handled (its ``request_started`` signal)."""

    def __init__(self, app):
        from flask import request_started

        self.count = 0
        request_started.connect(self._started, app)

    def _started(self, _sender, **_extra):
        self.count += 1


def test_accepted_webhooks_are_answered_below_flask_as_flask_would(hook):
    flask_handled = FlaskRequests(hook.app)
    fast = hook.post(hook.body(trace_id="fast-1"))
    assert flask_handled.count == 0  # the fast path answered
    assert (fast.status_code, fast.json) == (200, {"status": "accepted"})
    assert fast.headers["Content-Type"] == "application/json"
    assert fast.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in fast.headers["Content-Security-Policy"]
    assert fast.headers["Strict-Transport-Security"].startswith("max-age=")  # https URL
    ignored = hook.post(hook.body(type="cycle.updated", trace_id="fast-2"))
    assert (ignored.json, flask_handled.count) == ({"status": "ignored"}, 0)
    # The same webhook through Flask's view (the fast path off): the same answer.
    guard = hook.app.wsgi_app  # the Host check, in front of the fast path
    guard.wsgi_app = guard.wsgi_app.wsgi_app
    slow = hook.post(hook.body(trace_id="fast-3"))
    assert flask_handled.count == 1
    assert (slow.status_code, slow.data) == (fast.status_code, fast.data)
    for name in ("Content-Type", "Content-Security-Policy", "Strict-Transport-Security"):
        assert slow.headers[name] == fast.headers[name]
    assert [e[2] for e in hook.events()] == ["received", "ignored", "received"]


@pytest.mark.parametrize(
    "kwargs, status",
    [
        ({"secret": "wrong"}, 401),  # refused
        ({"base_url": "https://unknown.acme.test"}, 404),  # no connection here
        ({"body": b"not json"}, 400),  # malformed
        ({"body": b"x" * (64 * 1024 + 1)}, 413),  # oversize: not even read
    ],
)
def test_everything_but_the_common_case_is_answered_by_flask(hook, kwargs, status):
    flask_handled = FlaskRequests(hook.app)
    assert hook.post(**kwargs).status_code == status
    assert flask_handled.count == 1


def test_redeliveries_and_unknown_members_are_answered_by_flask(hook):
    flask_handled = FlaskRequests(hook.app)
    body = hook.body(trace_id="again")
    assert hook.post(body).json == {"status": "accepted"}
    assert hook.post(body).json == {"status": "duplicate"}
    assert hook.post(hook.body(user_id=999, trace_id="who")).status_code == 404
    assert flask_handled.count == 2 and hook.rejections() == {"unknown_user": 1}


def test_fast_path_behind_a_proxy_uses_the_forwarded_host(make_app, wizard_config, hook):
    proxied = make_app(PROXY_COUNT=1, **wizard_config)
    proxied.whoop_app = hook.app.whoop_app
    flask_handled = FlaskRequests(proxied)
    response = Hook(proxied).post(
        base_url="http://127.0.0.1:8000",
        headers={"X-Forwarded-Host": "whoop.acme.test", "X-Forwarded-Proto": "https"},
    )
    assert (response.json, flask_handled.count) == ({"status": "accepted"}, 0)
    assert "Strict-Transport-Security" in response.headers


def test_a_database_error_in_the_fast_path_is_flasks_clean_503(make_app, wizard_config, hook):
    from whoopadmin.webhooks import service

    service._receivers.clear()
    down = make_app(
        DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
        WEBHOOK_CONNECTION_CACHE_SECONDS=0,
        **wizard_config,
    )
    down.whoop_app = hook.app.whoop_app
    flask_handled = FlaskRequests(down)
    response = Hook(down).post()
    assert response.status_code == 503 and flask_handled.count == 1
    assert b"Traceback" not in response.data


def test_the_stored_row_is_complete(hook):
    """On PostgreSQL the insert goes through psycopg directly: every column as before."""
    from whoopadmin.connect.models import Link

    before = utcnow()
    body = hook.body(trace_id="full-row", id="9b2f8c2e-0000-4000-8000-00000000abcd")
    assert hook.post(body).json == {"status": "accepted"}
    with hook.app.app_context():
        event = db.session.scalar(sa.select(WebhookEvent))
        link = db.session.scalar(sa.select(Link))
        assert (event.connection_id, event.link_id) == (link.connection_id, link.id)
        assert (event.source, event.type, event.status, event.attempts, event.result) == (
            "member",
            "sleep.updated",
            "received",
            0,
            None,
        )
        assert (event.whoop_user_id, event.object_id) == (USER, json.loads(body)["id"])
        assert event.body == json.loads(body)
        assert before <= event.received_at <= utcnow()


@pytest.mark.parametrize("length", ["abc", "-5", "0", "999999999", "12"])
def test_a_wrong_content_length_is_a_clean_refusal(hook, length):
    """Unreadable, negative, zero, huge or short lengths: Flask answers a 4xx, nothing stored."""
    flask_handled = FlaskRequests(hook.app)
    body = hook.body(trace_id=f"length-{length}")
    stamp = str(int(time.time() * 1000))
    response = hook.client.post(
        "/hooks/whoop/push",
        data=body,
        base_url=PUBLIC,
        headers={
            "X-WHOOP-Signature-Timestamp": stamp,
            "X-WHOOP-Signature": whoop_signature(hook.secret, stamp, body),
        },
        environ_overrides={"CONTENT_LENGTH": length},
    )
    assert 400 <= response.status_code < 500, response.status_code
    assert flask_handled.count == 1 and hook.events() == []
