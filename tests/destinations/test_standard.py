"""Standard Webhooks headers on deliveries, verified with the ``standardwebhooks`` package
from PyPI (an implementation nobody here wrote), beside the whoopadmin-signature header."""

from __future__ import annotations

import base64
import json
import re

import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook, WebhookVerificationError

from tests.conftest import run_jobs
from tests.destinations.support import (
    deliveries,
    make_due,
    readme_snippet,
    seed,
    standard_verify,
)
from tests.factories import make_connection
from whoopadmin.destinations import service, standard
from whoopadmin.destinations.models import Delivery, Destination
from whoopadmin.destinations.signing import verify
from whoopadmin.extensions import db

BODY = b'{"id":"evt_1","type":"auth.success"}'


def test_new_secrets_are_standard_webhooks_secrets():
    secret = service.generate_secret()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret)
    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    assert len(key) == 32 and standard.key(secret) == key
    assert service.generate_secret() != secret


def test_the_signature_is_the_spec_hmac_and_the_package_accepts_it():
    secret = service.generate_secret()
    headers = standard.headers([secret], "evt_1", 1_700_000_000, BODY)
    assert headers["webhook-id"] == "evt_1"
    assert headers["webhook-timestamp"] == "1700000000"
    # The package's own signer gives the same value for the same id, time and body.
    from datetime import UTC, datetime

    theirs = Webhook(secret).sign("evt_1", datetime.fromtimestamp(1_700_000_000, UTC), BODY)
    assert headers["webhook-signature"] == theirs


def test_the_package_refuses_a_changed_body_a_wrong_secret_and_an_old_timestamp():
    import time

    secret = service.generate_secret()
    now = int(time.time())
    headers = standard.headers([secret], "evt_1", now, BODY)
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(service.generate_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, standard.headers([secret], "evt_1", now - 600, BODY))
    with pytest.raises(WebhookVerificationError):  # the id is signed too
        Webhook(secret).verify(BODY, {**headers, "webhook-id": "evt_2"})


def test_secrets_made_before_keep_working_in_both_schemes():
    """Old secrets are whsec_ + URL-safe base64: same key, the other alphabet."""
    import secrets as random
    import time

    legacy = "whsec_" + random.token_urlsafe(32)
    while "-" not in legacy and "_" not in legacy[6:]:  # one that needs the other alphabet
        legacy = "whsec_" + random.token_urlsafe(32)
    key = base64.urlsafe_b64decode(legacy[6:] + "=")
    assert standard.key(legacy) == key
    now = int(time.time())
    headers = standard.headers([legacy], "evt_1", now, BODY)
    # A Standard Webhooks library takes it once written in the standard alphabet …
    translated = legacy.replace("-", "+").replace("_", "/").replace("whsec/", "whsec_")
    assert Webhook(translated).verify(BODY, headers)
    # … and it is the same key: the raw bytes verify too.
    assert Webhook(key).verify(BODY, headers)
    # whoopadmin-signature is keyed with the secret string itself, as before.
    from whoopadmin.destinations.signing import sign

    verify(legacy, sign(legacy, BODY, now), BODY, now=now)


@pytest.mark.parametrize("bad", ["", "whsec_", "secret", "whsec_!!!!", "whsec_a"])
def test_malformed_secrets_are_refused(bad):
    with pytest.raises(ValueError):
        standard.key(bad)


def test_a_delivery_verifies_with_the_package_and_the_existing_header(private_ok, receiver):
    app = private_ok
    conn_id, _, secret = seed(app, receiver.url)
    with app.app_context():
        service.emit(conn_id, "auth.success", {"n": 1})
    run_jobs(app, ("deliveries",))
    (request,) = receiver.requests
    event = standard_verify(secret, request)
    assert request["headers"]["Webhook-Id"] == event["id"]
    t = verify(secret, request["headers"]["Whoopadmin-Signature"], request["body"])
    assert request["headers"]["Webhook-Timestamp"] == str(t)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request["body"] + b"x", request["headers"])


def test_the_id_stays_the_same_across_retries_and_resends(private_ok, receiver):
    """webhook-id is the idempotency key: every attempt and re-send of an event carries it."""
    app = private_ok
    conn_id, _, secret = seed(app, receiver.url)
    receiver.statuses = [500]
    with app.app_context():
        service.emit(conn_id, "auth.success", {"n": 1})
    run_jobs(app, ("deliveries",))
    make_due(app)
    with app.app_context():
        service.retry_due()
    run_jobs(app, ("deliveries",))
    with app.app_context():
        service.resend("test", db.session.scalar(sa.select(Delivery)))
    run_jobs(app, ("deliveries",))
    assert len(receiver.requests) == 3
    ids = {r["headers"]["Webhook-Id"] for r in receiver.requests}
    assert ids == {deliveries(app)[0].event_id}
    for request in receiver.requests:
        standard_verify(secret, request)


def test_a_destination_with_an_old_style_secret_still_delivers(private_ok, receiver):
    import secrets as random

    app = private_ok
    legacy = "whsec_" + random.token_urlsafe(32)
    with app.app_context():
        conn = make_connection()
        d = Destination(connection_id=conn.id, url=receiver.url, events=["auth.success"])
        d.signing_secret = legacy
        db.session.add(d)
        db.session.commit()
        service.emit(conn.id, "auth.success", {"n": 1})
    run_jobs(app, ("deliveries",))
    (request,) = receiver.requests
    verify(legacy, request["headers"]["Whoopadmin-Signature"], request["body"])
    key = base64.urlsafe_b64decode(legacy[6:] + "=")
    assert Webhook(key).verify(request["body"], request["headers"])


def test_the_readme_standard_webhooks_example_verifies_a_real_delivery(private_ok, receiver):
    """The README's Standard Webhooks receiver code, run as written."""
    receive = readme_snippet("### Standard Webhooks headers")["receive"]

    app = private_ok
    conn_id, _, secret = seed(app, receiver.url)
    with app.app_context():
        service.emit(conn_id, "auth.success", {"hello": "world"})
    run_jobs(app, ("deliveries",))
    (request,) = receiver.requests
    event = receive(secret, request["headers"], request["body"])
    assert event["data"] == {"hello": "world"}
    with pytest.raises(WebhookVerificationError):
        receive(service.generate_secret(), request["headers"], request["body"])
