"""The demo receiver checks whoopadmin's signatures with its own code, and shows its inbox."""

from __future__ import annotations

import json
import re
import time

import pytest
import requests

from whoopadmin.demokit.receiver import MAX_BODY, ReceiverServer, check_signature
from whoopadmin.destinations.signing import sign

SECRET = "whsec_demo-receiver-test-secret"
BODY = b'{"id":"evt_1","type":"test","data":{"message":"hello"}}'


def test_its_own_check_accepts_what_the_sender_signs():
    now = time.time()
    assert check_signature(SECRET, sign(SECRET, BODY), BODY, now).valid is True
    # During a rotation a header carries two signatures: one match is enough.
    both = sign("whsec_old", BODY, int(now)) + "," + sign(SECRET, BODY, int(now)).split(",")[1]
    assert check_signature(SECRET, both, BODY, now).valid is True


@pytest.mark.parametrize(
    ("header", "body", "at_offset", "reason"),
    [
        (lambda: sign(SECRET, BODY), BODY + b" ", 0, "does not match"),  # body changed
        (lambda: sign("whsec_other", BODY), BODY, 0, "does not match"),  # another secret
        (lambda: sign(SECRET, BODY, int(time.time()) - 301), BODY, 0, "5 minutes"),  # replay
        (lambda: sign(SECRET, BODY), BODY, 400, "5 minutes"),  # arrived long after
        (lambda: "v1=" + "0" * 64, BODY, 0, "malformed"),
        (lambda: "t=1,v2=abc", BODY, 0, "malformed"),
        (lambda: "", BODY, 0, "no whoopadmin-signature"),
        (lambda: sign(SECRET, BODY).replace("t=", "t=-"), BODY, 0, "malformed"),
    ],
    ids=["body", "secret", "old-timestamp", "late", "no-t", "no-v1", "missing", "negative-t"],
)
def test_its_own_check_refuses_forgeries(header, body, at_offset, reason):
    verdict = check_signature(SECRET, header(), body, time.time() + at_offset)
    assert verdict.valid is False
    assert reason in verdict.reason


def test_without_a_secret_nothing_is_claimed():
    verdict = check_signature(None, sign(SECRET, BODY), BODY, time.time())
    assert verdict.valid is None and "not checked" in verdict.reason


@pytest.fixture
def receiver():
    seen = []
    server = ReceiverServer(on_receive=lambda item, verdict: seen.append((item, verdict)))
    server.start()
    server.seen = seen
    session = requests.Session()
    session.trust_env = False
    server.http = session
    yield server
    session.close()
    server.stop()


def _deliver(receiver, body: bytes, secret: str = SECRET, **headers) -> requests.Response:
    headers = {
        "whoopadmin-signature": sign(secret, body),
        "whoopadmin-event-type": "test",
        "whoopadmin-event-id": "evt_1",
        "whoopadmin-delivery-attempt": "1",
        "Content-Type": "application/json",
        **headers,
    }
    return receiver.http.post(receiver.deliveries_url, data=body, headers=headers, timeout=5)


def _set_secret(receiver, secret: str) -> requests.Response:
    page = receiver.http.get(receiver.url + "/", timeout=5).text
    token = re.search(r'name="form_token" value="([^"]+)"', page)[1]
    return receiver.http.post(
        receiver.url + "/secret",
        data={"form_token": token, "secret": secret},
        allow_redirects=False,
        timeout=5,
    )


def test_the_inbox_shows_each_delivery_and_checks_it_once_the_secret_is_pasted(receiver):
    assert _deliver(receiver, BODY).status_code == 200
    assert _deliver(receiver, BODY, secret="whsec_forged").status_code == 200
    assert [v.valid for _, v in receiver.seen] == [None, None]  # no secret yet

    answer = _set_secret(receiver, SECRET)
    assert answer.status_code == 303
    listing = receiver.http.get(receiver.url + "/deliveries.json", timeout=5).json()
    # Newest first; checked now, with the arrival time as the reference.
    assert [d["signature_valid"] for d in listing] == [False, True]
    assert listing[1]["type"] == "test" and json.loads(listing[1]["body"])["id"] == "evt_1"
    page = receiver.http.get(receiver.url + "/", timeout=5).text
    assert page.count('data-testid="delivery"') == 2
    assert 'data-valid="yes"' in page and 'data-valid="no"' in page
    assert SECRET not in page  # the secret is never shown back

    _deliver(receiver, BODY)
    assert receiver.seen[-1][1].valid is True


def test_the_secret_form_refuses_other_sites_and_bad_input(receiver):
    forged = receiver.http.post(
        receiver.url + "/secret", data={"form_token": "guess", "secret": "x"}, timeout=5
    )
    assert forged.status_code == 400
    assert _set_secret(receiver, "line\x00break").status_code == 400
    assert _set_secret(receiver, "x" * 600).status_code == 400
    page = receiver.http.get(receiver.url + "/", timeout=5).text
    assert "No secret yet" in page


def test_odd_bodies_are_kept_escaped_and_huge_ones_refused(receiver):
    hostile = b'{"type": "<script>alert(1)</script>"}'
    assert _deliver(receiver, hostile, **{"whoopadmin-event-type": "<b>x</b>"}).ok
    assert _deliver(receiver, b"\xff\xfe not json").ok
    page = receiver.http.get(receiver.url + "/", timeout=5).text
    assert "<script>alert(1)</script>" not in page and "<b>x</b>" not in page
    assert "&lt;script&gt;" in page
    too_big = _deliver(receiver, b"x" * (MAX_BODY + 1))
    assert too_big.status_code == 413
    assert len(receiver.seen) == 2
    assert receiver.http.get(receiver.url + "/deliveries", timeout=5).status_code == 405
