"""The whoopadmin-signature scheme: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from whoopadmin.destinations.signing import SignatureError, parse, sign, verify

SECRET = "whsec_test-secret"
BODY = b'{"id":"evt_1","type":"auth.success"}'


def test_header_is_the_documented_hmac_of_t_dot_body():
    header = sign(SECRET, BODY, t=1_700_000_000)
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_verify_accepts_a_fresh_signature_and_returns_its_time():
    header = sign(SECRET, BODY, t=1_700_000_000)
    assert verify(SECRET, header, BODY, now=1_700_000_100) == 1_700_000_000


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [
        ("whsec_other", BODY, 1_700_000_000),  # wrong secret
        (SECRET, BODY + b" ", 1_700_000_000),  # body changed
        (SECRET, BODY, 1_700_000_301),  # too old
        (SECRET, BODY, 1_699_999_699),  # from the future
    ],
)
def test_verify_refuses_wrong_secret_changed_body_and_stale_time(secret, body, now):
    header = sign(SECRET, BODY, t=1_700_000_000)
    with pytest.raises(SignatureError):
        verify(secret, header, body, now=now)


@pytest.mark.parametrize(
    "header", ["", "garbage", "t=abc,v1=00", "v1=00", "t=1700000000", "t=1700000000,v0=00"]
)
def test_malformed_headers_are_refused(header):
    with pytest.raises(SignatureError):
        verify(SECRET, header, BODY, now=1_700_000_000)


def test_one_matching_signature_of_several_is_enough():
    good = sign(SECRET, BODY, t=1_700_000_000).split(",")[1]
    header = f"t=1700000000,v1={'0' * 64},{good}"
    assert parse(header)[1] == ["0" * 64, good.split("=", 1)[1]]
    assert verify(SECRET, header, BODY, now=1_700_000_000) == 1_700_000_000


def test_tolerance_zero_disables_the_time_check():
    header = sign(SECRET, BODY, t=1)
    assert verify(SECRET, header, BODY, tolerance=0, now=1_700_000_000) == 1


def test_signing_needs_a_secret():
    with pytest.raises(ValueError):
        sign("", BODY)
