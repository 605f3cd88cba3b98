"""Findings and refusals in plain words: no exception class names, no codec messages."""

from __future__ import annotations

import json
import re

import pytest

from tests.domains.support import ANSWER_TIMEOUT, CORRECT, HOSTNAME
from whoopadmin.domains import CheckResult, InvalidHostname, check_domain, normalise_hostname

# What a message must never show: a Python exception's class name or a codec's report.
INTERNALS = re.compile(
    r"[A-Z][a-z]+(Error|Exception)\b|NoNameservers|NXDOMAIN\(|gaierror|_ssl\.c|codec|Errno"
)


def words(result: CheckResult) -> str:
    return json.dumps([f.to_dict() for f in result.findings])


@pytest.mark.parametrize(
    ("fault", "rdtype", "message"),
    [
        (
            "garbage",
            "CNAME",
            "The nameserver {server} gave no usable answer: the reply was malformed.",
        ),
        (
            "servfail",
            "CAA",
            f"The CAA records for {HOSTNAME} could not be read: every nameserver failed to "
            "answer (SERVFAIL or refused).",
        ),
    ],
)
def test_dns_trouble_is_described_in_words(serve, records, fault, rdtype, message):
    server = serve(CORRECT)
    server.set_fault(fault, HOSTNAME, rdtypes=[rdtype])
    result = check_domain(HOSTNAME, records, nameservers=[server.address], timeout=ANSWER_TIMEOUT)
    (finding,) = [f for f in result.findings if f.severity == "temporary"]
    assert finding.message == message.format(server=f"{server.address[0]}:{server.address[1]}")
    assert not INTERNALS.search(words(result)), words(result)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        (
            "☃.example",
            "☃.example cannot be a domain name: the character '☃' (U+2603) is not allowed in one.",
        ),
        (
            "a\u200db.example",
            "a\u200db.example cannot be a domain name: an invisible character (U+200D) is not "
            "allowed in one.",
        ),
        (
            "xn--zz.example",
            "xn--zz.example cannot be a domain name: a part that starts with xn-- is not valid "
            "punycode.",
        ),
        (
            "\u0663.example",
            "\u0663.example cannot be a domain name: it mixes right-to-left and left-to-right "
            "writing in a way domain names forbid.",
        ),
    ],
)
def test_names_idna_refuses_are_explained_in_words(typed, message):
    with pytest.raises(InvalidHostname) as refused:
        normalise_hostname(typed)
    assert refused.value.reason == "not_idna"
    assert str(refused.value) == message
    assert not INTERNALS.search(str(refused.value))
