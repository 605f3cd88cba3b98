"""Hostname normalising and refusals, validation tokens, and the records table."""

from __future__ import annotations

import re

import pytest

from whoopadmin.domains import (
    ExpectedRecord,
    InvalidHostname,
    InvalidRecord,
    expected_records,
    make_issuer_record,
    normalise_hostname,
    relative_name,
    validation_token,
)


@pytest.mark.parametrize(
    ("typed", "normalised"),
    [
        ("whoop.acme.com", "whoop.acme.com"),
        ("  Whoop.ACME.com.  ", "whoop.acme.com"),
        ("https://whoop.acme.com/", "whoop.acme.com"),
        ("HTTPS://Whoop.Acme.com/connect/abc?x=1#top", "whoop.acme.com"),
        ("http://admin@whoop.acme.com:8443/path", "whoop.acme.com"),
        ("whoop.acme.com/connect", "whoop.acme.com"),
        ("whoop.acme.com:443", "whoop.acme.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("WHOOP.Bücher.DE", "whoop.xn--bcher-kva.de"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("straße.de", "xn--strae-oqa.de"),  # IDNA 2008: ß is kept, not mapped to "ss"
        ("whoop-1.eu.acme.co.uk", "whoop-1.eu.acme.co.uk"),
        ("a" * 63 + ".com", "a" * 63 + ".com"),
    ],
)
def test_normalise_good_hostnames(typed, normalised):
    assert normalise_hostname(typed) == normalised


def long_name(length: int) -> str:
    """A valid hostname of exactly *length* characters, ending in .com."""
    labels, remaining = [], length - len(".com")
    while remaining > 0:
        size = min(63, remaining)
        if remaining - size == 1:
            size -= 1  # leave room for a dot and a one-letter label, not a bare dot
        labels.append("a" * size)
        remaining -= size + 1
    return ".".join(labels) + ".com"


def test_names_up_to_237_characters_leave_room_for_the_validation_label():
    assert len(long_name(237)) == 237
    assert normalise_hostname(long_name(237)) == long_name(237)
    with pytest.raises(InvalidHostname) as excinfo:
        normalise_hostname(long_name(238))
    assert excinfo.value.reason == "name_too_long"


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (None, "empty"),
        ("https://", "empty"),
        ("192.0.2.1", "ip_address"),
        ("999.1.1.1", "ip_address"),
        ("2001:db8::1", "ip_address"),
        ("[2001:db8::1]", "ip_address"),
        ("https://[2001:db8::1]:8443/x", "ip_address"),
        ("http://192.0.2.1:8080/", "ip_address"),
        ("*.acme.com", "wildcard"),
        ("whoop.*.acme.com", "wildcard"),
        ("_whoop.acme.com", "underscore"),
        ("who_op.acme.com", "underscore"),
        ("a" * 64 + ".com", "label_too_long"),
        ("who op.acme.com", "bad_characters"),
        ("whoop!.acme.com", "bad_characters"),
        ("-whoop.acme.com", "bad_characters"),
        ("whoop-.acme.com", "bad_characters"),
        ("whoop..acme.com", "empty_label"),
        (".whoop.acme.com", "empty_label"),
        ("localhost", "single_label"),
        ("whoop", "single_label"),
        ("whoop.acme.123", "numeric_tld"),
        ("☃.example", "not_idna"),
        ("xn--zz.example", "not_idna"),
    ],
)
def test_refused_hostnames(typed, reason):
    with pytest.raises(InvalidHostname) as excinfo:
        normalise_hostname(typed)
    assert excinfo.value.reason == reason
    # A sentence a person can act on, not an exception repr.
    message = str(excinfo.value)
    assert message == excinfo.value.message
    assert message.endswith(".") and len(message.split()) >= 5


def test_refusal_messages_name_the_problem():
    with pytest.raises(InvalidHostname, match="underscore"):
        normalise_hostname("_dmarc.acme.com")
    with pytest.raises(InvalidHostname, match="IP address"):
        normalise_hostname("10.0.0.1")
    with pytest.raises(InvalidHostname, match="wildcard"):
        normalise_hostname("*.acme.com")


def test_validation_tokens_are_random_dns_labels():
    tokens = {validation_token() for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert re.fullmatch(r"[a-z2-7]{26}", token)


def test_expected_records_with_the_zone_known():
    records = expected_records(
        "Whoop.EU.Acme.com",
        "Edge.WhoopAdmin.example.",
        "acme.whoopadmin.example",
        "tok123",
        zone="acme.com.",
    )
    assert [r.to_dict() for r in records] == [
        {
            "purpose": "routing",
            "type": "CNAME",
            "name": "whoop.eu.acme.com",
            "label": "whoop.eu",
            "value": "edge.whoopadmin.example.",
            "ttl": 300,
            "zone": "acme.com",
        },
        {
            "purpose": "validation",
            "type": "CNAME",
            "name": "_acme-challenge.whoop.eu.acme.com",
            "label": "_acme-challenge.whoop.eu",
            "value": "tok123.acme.whoopadmin.example.",
            "ttl": 300,
            "zone": "acme.com",
        },
    ]
    assert [ExpectedRecord.from_dict(r.to_dict()) for r in records] == records


def test_expected_records_without_the_zone_guess_the_first_label():
    routing, validation = expected_records(
        "whoop.eu.acme.com", "edge.whoopadmin.example", "v.whoopadmin.example", "t", ttl=600
    )
    assert (routing.label, validation.label) == ("whoop", "_acme-challenge.whoop")
    assert routing.zone is None and routing.ttl == 600


def test_expected_records_need_a_token_or_an_issuer_record():
    # Neither: routing only (the CLI's check without a validation record).
    (routing,) = expected_records("whoop.acme.com", "edge.whoopadmin.example", None, None)
    assert routing.purpose == "routing"
    with pytest.raises(ValueError):
        expected_records("whoop.acme.com", "edge.whoopadmin.example", "v.example", None)
    with pytest.raises(ValueError):
        expected_records("whoop.acme.com", "edge.whoopadmin.example", None, "token")
    with pytest.raises(ValueError):
        expected_records("whoop.acme.com", "edge.whoopadmin.example", "v.example", "not a label")
    with pytest.raises(InvalidHostname):
        expected_records("*.acme.com", "edge.whoopadmin.example", "v.example", "t")


def test_issuer_records():
    cname = make_issuer_record(
        " _A1B2.Whoop.Acme.com. ", "cname", "_X9.ACM-Validations.aws", "whoop.acme.com"
    )
    assert (cname.type, cname.name, cname.value) == (
        "CNAME",
        "_a1b2.whoop.acme.com",
        "_x9.acm-validations.aws.",
    )
    txt = make_issuer_record("asuid.whoop.acme.com", "TXT", ' "ABC def=1" ', "whoop.acme.com")
    assert txt.value == "ABC def=1"
    sibling = make_issuer_record("_cm.acme.com", "TXT", "x", "whoop.acme.com")
    assert sibling.name == "_cm.acme.com"
    _, validation = expected_records(
        "whoop.acme.com", "edge.whoopadmin.example", None, None, cname, zone="acme.com"
    )
    assert (validation.label, validation.value) == ("_a1b2.whoop", "_x9.acm-validations.aws.")


@pytest.mark.parametrize(
    ("name", "rtype", "value", "reason"),
    [
        ("_x.whoop.acme.com", "A", "192.0.2.1", "bad_type"),
        ("_x.other.org", "CNAME", "y.example", "outside_domain"),
        ("_x.whoop.acme.com", "CNAME", "", "empty"),
        ("_x.whoop.acme.com", "CNAME", "not a name", "bad_characters"),
        ("_x.whoop.acme.com", "TXT", '""', "empty"),
        ("", "TXT", "x", "empty"),
    ],
)
def test_bad_issuer_records(name, rtype, value, reason):
    with pytest.raises(InvalidRecord) as excinfo:
        make_issuer_record(name, rtype, value, "whoop.acme.com")
    assert excinfo.value.reason == reason


def test_relative_name():
    assert relative_name("whoop.acme.com", "acme.com") == "whoop"
    assert relative_name("acme.com.", "acme.com") == "@"
    assert relative_name("whoop.other.org", "acme.com") == "whoop.other.org"
    assert relative_name("whoop.acme.com", None) == "whoop.acme.com"
