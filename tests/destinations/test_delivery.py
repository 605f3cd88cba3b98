"""Emitting and delivering events to a real receiver on loopback: signature, retries,
re-send, and the SSRF check repeated at delivery time."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import run_jobs
from tests.destinations.support import deliveries, make_due, readme_snippet, seed
from tests.factories import make_connection, make_link
from whoopadmin.audit import utcnow
from whoopadmin.connect.models import Link
from whoopadmin.destinations import service, transport
from whoopadmin.destinations.models import Delivery
from whoopadmin.destinations.signing import verify
from whoopadmin.extensions import db


def emit(app, connection_id, event_type="auth.success", data=None, link_id=None) -> int:
    with app.app_context():
        link = db.session.get(Link, link_id) if link_id else None
        return service.emit(connection_id, event_type, data or {"n": 1}, link=link)


def receiver_verifies(secret: str, headers: dict, body: bytes) -> dict:
    """What the README tells a receiver to do, written out independently of signing.py."""
    fields = dict(p.split("=", 1) for p in headers["Whoopadmin-Signature"].split(","))
    assert abs(time.time() - int(fields["t"])) <= 300
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(expected.hexdigest(), fields["v1"])
    return json.loads(body)


def test_delivery_to_a_loopback_receiver_verifies_with_the_documented_scheme(private_ok, receiver):
    app = private_ok
    with app.app_context():
        conn = make_connection()
        link = make_link(conn, whoop_user_id=555, reference_id="user-555")
        destination, secret = service.create_destination(
            "test", conn, receiver.url, ["auth.success"]
        )
        assert service.emit(conn.id, "auth.success", {"scopes": "read:sleep"}, link=link) == 1
        link_uid, conn_id = link.uid, conn.id

    run_jobs(app, ("deliveries",))

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request["path"] == "/hooks/whoop?"
    event = receiver_verifies(secret, request["headers"], request["body"])
    verify(secret, request["headers"]["Whoopadmin-Signature"], request["body"])
    assert event["type"] == "auth.success"
    assert event["environment"] == "production"
    assert event["provider"] == "whoop"
    assert event["user"] == {
        "provider": "whoop",
        "user_id": link_uid,
        "reference_id": "user-555",
        "provider_user_id": "555",
        "whoop_user_id": 555,
    }
    assert event["data"] == {"scopes": "read:sleep"}
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["Whoopadmin-Event-Id"] == event["id"]
    assert request["headers"]["Whoopadmin-Delivery-Attempt"] == "1"

    (row,) = deliveries(app)
    assert row.status == "delivered" and row.attempts == 1 and row.last_status_code == 200
    assert row.last_latency_ms is not None and row.next_attempt_at is None
    assert row.connection_id == conn_id and row.event_id == event["id"]
    assert row.history[0]["status_code"] == 200


def test_500s_are_retried_on_the_backoff_schedule_until_delivered(private_ok, receiver):
    app = private_ok
    conn_id, _, secret = seed(app, receiver.url)
    receiver.statuses = [500, 503]
    emit(app, conn_id)

    started = utcnow()
    run_jobs(app, ("deliveries",))
    (row,) = deliveries(app)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 500)
    assert row.last_error == "HTTP 500"
    # About a minute later, not sooner: running the queue again sends nothing.
    assert timedelta(seconds=55) <= row.next_attempt_at - started <= timedelta(seconds=65)
    with app.app_context():
        assert service.retry_due() == 0
    service_deliver(app, row.id)
    assert len(receiver.requests) == 1

    make_due(app)
    with app.app_context():
        assert service.retry_due() == 1
    run_jobs(app, ("deliveries",))
    (row,) = deliveries(app)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 2, 503)
    assert (
        timedelta(seconds=295)
        <= row.next_attempt_at - row.last_attempt_at
        <= timedelta(seconds=305)
    )

    make_due(app)
    with app.app_context():
        service.retry_due()
    run_jobs(app, ("deliveries",))
    (row,) = deliveries(app)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 3, 200)
    assert [a["status_code"] for a in row.history] == [500, 503, 200]
    # Every attempt is the same event, freshly signed.
    assert len({r["body"] for r in receiver.requests}) == 1
    assert [r["headers"]["Whoopadmin-Delivery-Attempt"] for r in receiver.requests] == [
        "1",
        "2",
        "3",
    ]
    for r in receiver.requests:
        receiver_verifies(secret, r["headers"], r["body"])


def service_deliver(app, delivery_id):
    with app.app_context():
        return service.deliver(delivery_id)


def test_a_delivery_fails_after_the_last_retry(private_ok, receiver):
    app = private_ok
    conn_id, _, _ = seed(app, receiver.url)
    receiver.statuses = [500] * 10
    emit(app, conn_id)
    gaps = []
    for _ in range(service.MAX_ATTEMPTS):
        make_due(app)
        with app.app_context():
            delivery_id = db.session.scalar(sa.select(Delivery.id))
            service.deliver(delivery_id)
            row = db.session.get(Delivery, delivery_id)
            if row.next_attempt_at:
                gaps.append(round((row.next_attempt_at - row.last_attempt_at).total_seconds()))
    (row,) = deliveries(app)
    assert row.status == "failed" and row.attempts == 6 and row.next_attempt_at is None
    assert gaps == [60, 300, 1800, 7200, 21600]
    assert len(receiver.requests) == 6
    with app.app_context():
        assert service.retry_due() == 0


def test_resend_posts_the_same_event_again_as_a_new_delivery(private_ok, receiver):
    app = private_ok
    conn_id, _, secret = seed(app, receiver.url)
    emit(app, conn_id)
    run_jobs(app, ("deliveries",))
    (first,) = deliveries(app)
    with app.app_context():
        copy = service.resend("test", db.session.get(Delivery, first.id))
        assert copy.resend_of_id == first.id
    run_jobs(app, ("deliveries",))
    first_again, second = deliveries(app)
    assert first_again.status == "delivered" and second.status == "delivered"
    assert second.event_id == first.event_id and second.payload == first.payload
    assert len(receiver.requests) == 2
    assert receiver.requests[0]["body"] == receiver.requests[1]["body"]
    receiver_verifies(secret, receiver.requests[1]["headers"], receiver.requests[1]["body"])
    # A pending delivery cannot be re-sent (it is still being sent).
    with app.app_context():
        pending = Delivery(**{**_copyable(second), "status": "pending"})
        db.session.add(pending)
        db.session.commit()
        with pytest.raises(service.DestinationError):
            service.resend("test", pending)


def _copyable(row: Delivery) -> dict:
    names = ("destination_id", "connection_id", "event_id", "event_type", "payload")
    return {n: getattr(row, n) for n in names}


def test_events_go_only_to_active_destinations_that_want_them(private_ok, receiver):
    app = private_ok
    conn_id, _, _ = seed(app, receiver.url, events=["deauth"])
    with app.app_context():
        other = make_connection(environment="staging", hostname="whoop.staging.acme.com")
        service.create_destination("test", other, receiver.url, ["auth.success"], active=False)
        other_id = other.id
    assert emit(app, conn_id, "auth.success") == 0  # filtered out
    assert emit(app, other_id, "auth.success") == 0  # paused
    assert emit(app, conn_id, "deauth") == 1
    run_jobs(app, ("deliveries",))
    assert [json.loads(r["body"])["type"] for r in receiver.requests] == ["deauth"]


def test_emit_without_destinations_is_one_query_and_never_raises(app, monkeypatch, caplog):
    with app.app_context():
        conn_id = make_connection().id
        statements = []

        def count(conn, cursor, statement, *args):
            statements.append(statement)

        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            assert service.emit(conn_id, "auth.success", {"x": 1}) == 0
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
        assert len(statements) == 1

        # Broken input or a broken database: logged, never raised into the caller.
        assert service.emit(conn_id, "no.such.event", {}) == 0
        monkeypatch.setattr(service, "_wanting", lambda *a: 1 / 0)
        assert service.emit(conn_id, "auth.success", {}) == 0
        assert service.emit_records(object(), "sleep", [{}]) == 0
    assert "could not emit" in caplog.text


def test_a_delivery_queued_while_redis_is_down_is_swept_later(private_ok, receiver, monkeypatch):
    import whoopadmin.jobs

    app = private_ok
    conn_id, _, _ = seed(app, receiver.url)

    def down(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(whoopadmin.jobs, "enqueue_once", down)
    assert emit(app, conn_id) == 1  # stored, not queued, no error
    monkeypatch.undo()
    run_jobs(app, ("deliveries",))
    assert receiver.requests == []
    with app.app_context():
        assert service.retry_due() == 1
    run_jobs(app, ("deliveries",))
    assert len(receiver.requests) == 1 and deliveries(app)[0].status == "delivered"


def test_data_events_carry_normalised_indicators(private_ok, receiver):
    app = private_ok
    with app.app_context():
        conn = make_connection()
        link = make_link(conn)
        service.create_destination("test", conn, receiver.url, ["recovery"])
        record = {
            "cycle_id": 93845,
            "sleep_id": "ecfc6a15-4661-442f-a9a4-f160dd7afae8",
            "user_id": 10001,
            "created_at": "2022-04-24T11:25:44.774Z",
            "updated_at": "2022-04-24T14:25:44.774Z",
            "score_state": "SCORED",
            "score": {"recovery_score": 44, "resting_heart_rate": 64, "hrv_rmssd_milli": 31.8},
        }
        assert service.emit_records(link, "recovery", [record]) == 1
        assert service.emit_records(link, "sleep", [{"id": "x"}]) == 0  # not wanted
    run_jobs(app, ("deliveries",))
    event = json.loads(receiver.requests[0]["body"])
    assert event["type"] == "recovery"
    assert event["data"]["whoop_id"] == "ecfc6a15-4661-442f-a9a4-f160dd7afae8"
    assert event["data"]["id"] == event["data"]["whoop_id"]  # the provider-neutral name
    indicators = {i["name"]: (i["value"], i["unit"]) for i in event["data"]["indicators"]}
    assert indicators["recovery_score"] == (44, "%")
    assert indicators["hrv_rmssd"] == (31.8, "ms")


# --------------------------------------------------------------------------- SSRF at delivery


def _stored_destination(app, url: str) -> int:
    """A destination row written directly, as if it had passed the check when saved."""
    from whoopadmin.destinations.models import Destination

    with app.app_context():
        conn = make_connection()
        d = Destination(connection_id=conn.id, url=url, events=["auth.success"], active=True)
        d.signing_secret = service.generate_secret()
        db.session.add(d)
        db.session.commit()
        return conn.id


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "10.0.0.5", "169.254.169.254", "[::1]", "localhost", "[::ffff:127.0.0.1]"],
)
def test_private_addresses_are_refused_at_delivery_time(app, receiver, host, network_guard):
    # The receiver listens on 127.0.0.1: if the check were skipped it would get the event.
    url = f"https://{host}:{receiver.port}/hooks/whoop"
    conn_id = _stored_destination(app, url)
    app.config["ALLOW_PRIVATE_DESTINATIONS"] = False
    assert emit(app, conn_id) == 1
    run_jobs(app, ("deliveries",))
    (row,) = deliveries(app)
    assert row.status == "pending" and row.attempts == 1 and row.last_status_code is None
    assert row.last_error.startswith("refused:")
    assert receiver.requests == [] and network_guard == []


def test_dns_rebinding_is_caught_at_delivery_time(app, receiver, monkeypatch, network_guard):
    answers = {"hooks.rebind.test": ["9.9.9.9"]}  # public when saved (never connected to)
    monkeypatch.setattr(transport, "resolve", lambda host, port: list(answers[host]))
    with app.app_context():
        conn = make_connection()
        service.create_destination(
            "test", conn, f"https://hooks.rebind.test:{receiver.port}/x", ["auth.success"]
        )
        conn_id = conn.id
    answers["hooks.rebind.test"] = ["9.9.9.9", "127.0.0.1"]  # …then one loopback answer
    emit(app, conn_id)
    run_jobs(app, ("deliveries",))
    (row,) = deliveries(app)
    assert "hooks.rebind.test resolves to 127.0.0.1, a loopback address" in row.last_error
    assert receiver.requests == [] and network_guard == []


def test_the_request_goes_to_the_checked_address_without_a_second_lookup(
    private_ok, receiver, monkeypatch, network_guard
):
    app = private_ok
    lookups = []

    def resolve(host, port):
        lookups.append(host)
        # A second lookup would get an address the guard refuses to connect to.
        return ["127.0.0.1"] if len(lookups) % 2 else ["10.255.0.1"]

    monkeypatch.setattr(transport, "resolve", resolve)
    conn_id, _, secret = seed(app, f"http://receiver.rebind.test:{receiver.port}/in")
    lookups.clear()
    emit(app, conn_id)
    run_jobs(app, ("deliveries",))
    assert lookups == ["receiver.rebind.test"]
    (request,) = receiver.requests
    assert request["headers"]["Host"] == f"receiver.rebind.test:{receiver.port}"
    receiver_verifies(secret, request["headers"], request["body"])
    assert network_guard == [] and deliveries(app)[0].status == "delivered"


def test_an_unreachable_receiver_is_a_failed_attempt_not_an_error(private_ok, receiver):
    app = private_ok
    port = receiver.port
    receiver.__exit__()  # nothing listens there any more
    conn_id, _, _ = seed(app, f"http://127.0.0.1:{port}/gone")
    emit(app, conn_id)
    run_jobs(app, ("deliveries",))
    (row,) = deliveries(app)
    assert row.status == "pending" and row.attempts == 1 and row.last_status_code is None
    assert "could not connect" in row.last_error


def test_rate_limit_hit_is_emitted_once_per_pause(private_ok, receiver):
    app = private_ok
    conn_id, _, _ = seed(app, receiver.url, events=["rate_limit_hit"])
    with app.app_context():
        assert service.emit_rate_limit(conn_id, 42.5) == 1
        assert service.emit_rate_limit(conn_id, 42.5) == 0  # same pause: already reported
    run_jobs(app, ("deliveries",))
    (request,) = receiver.requests
    event = json.loads(request["body"])
    assert event["type"] == "rate_limit_hit" and event["data"]["retry_after"] == 42.5


def test_the_readme_snippet_verifies_a_real_delivery(private_ok, receiver):
    """The README's receiver code, run as written, against a real delivery."""
    verify_whoopadmin = readme_snippet("### Verifying the signature")["verify_whoopadmin"]

    app = private_ok
    conn_id, _, secret = seed(app, receiver.url)
    emit(app, conn_id, data={"hello": "world"})
    run_jobs(app, ("deliveries",))
    (request,) = receiver.requests
    header = request["headers"]["Whoopadmin-Signature"]
    event = verify_whoopadmin(secret, header, request["body"])
    assert event["data"] == {"hello": "world"}
    with pytest.raises(ValueError):
        verify_whoopadmin("whsec_wrong", header, request["body"])
    with pytest.raises(ValueError):
        verify_whoopadmin(secret, header, request["body"] + b" ")


@pytest.fixture
def tls_receiver(tmp_path):
    import ssl

    from tests.destinations.conftest import Receiver
    from tests.destinations.support import tls_files

    ca, cert, key = tls_files(tmp_path, "hooks.tls.test")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with Receiver(ssl_context=context) as server:
        server.ca = ca
        yield server


def test_https_connects_to_the_checked_address_and_checks_the_urls_certificate(
    private_ok, tls_receiver, monkeypatch, network_guard
):
    app = private_ok
    app.config["DESTINATION_CA_BUNDLE"] = tls_receiver.ca
    monkeypatch.setattr(transport, "resolve", lambda host, port: ["127.0.0.1"])
    port = tls_receiver.port
    conn_id, _, secret = seed(app, f"https://hooks.tls.test:{port}/in")
    emit(app, conn_id)
    run_jobs(app, ("deliveries",))
    (request,) = tls_receiver.requests
    assert request["headers"]["Host"] == f"hooks.tls.test:{port}"
    receiver_verifies(secret, request["headers"], request["body"])
    assert deliveries(app)[0].status == "delivered" and network_guard == []

    # The same address under a name the certificate does not cover is refused by TLS.
    with app.app_context():
        other = make_connection(environment="staging", hostname="whoop.staging.acme.com")
        service.create_destination(
            "test", other, f"https://wrong.tls.test:{port}/in", ["auth.success"]
        )
        other_id = other.id
    emit(app, other_id)
    run_jobs(app, ("deliveries",))
    failed = deliveries(app)[1]
    assert failed.status == "pending" and failed.last_status_code is None
    assert "SSL" in failed.last_error or "certificate" in failed.last_error.lower()
    assert len(tls_receiver.requests) == 1


def test_ipv6_loopback_receiver_works_in_development(private_ok):
    from tests.destinations.conftest import Receiver

    try:
        server = Receiver(host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    app = private_ok
    with server:
        conn_id, _, secret = seed(app, server.url)
        emit(app, conn_id)
        run_jobs(app, ("deliveries",))
        (request,) = server.requests
        assert request["headers"]["Host"] == f"[::1]:{server.port}"
        receiver_verifies(secret, request["headers"], request["body"])


def test_deliveries_show_on_the_link_timeline_and_in_metrics(private_ok, receiver):
    """Support sees each delivery on the link's timeline; /metrics counts them."""
    from tests.factories import make_user
    from tests.helpers import AuthActions

    app = private_ok
    with app.app_context():
        conn = make_connection()
        link = make_link(conn, whoop_user_id=556, reference_id="user-556")
        service.create_destination("test", conn, receiver.url, ["auth.success"])
        service.emit(conn.id, "auth.success", {"n": 1}, link=link)
        make_user("support")
        uid = link.uid
    run_jobs(app, ("deliveries",))
    client = app.test_client()
    AuthActions(client).login("support@example.com", "support-password")
    page = client.get(f"/links/{uid}").get_data(as_text=True)
    assert 'data-kind="delivery"' in page
    assert "Delivery of auth.success" in page and "delivered after 1 attempt · HTTP 200" in page
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'whoopadmin_deliveries_total{status="delivered"} 1' in metrics
