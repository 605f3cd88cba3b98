"""check_domain and find_zone against real authoritative DNS servers on loopback."""

from __future__ import annotations

import json
import time

import pytest

from tests.domains.support import (
    ANSWER_TIMEOUT,
    CNAME_TARGET,
    CORRECT,
    HOSTNAME,
    TIMEOUT,
    TOKEN,
    VALIDATION_DOMAIN,
    zone,
)
from whoopadmin.domains import (
    FINDING_CODES,
    CheckResult,
    DNSTemporaryError,
    InvalidHostname,
    ZoneNotFound,
    check_domain,
    expected_records,
    find_zone,
    make_issuer_record,
    parse_nameservers,
    refuse_apex,
)

VALIDATION_NAME = f"_acme-challenge.{HOSTNAME}"
ROUTING_ONLY = f"whoop CNAME {CNAME_TARGET}.\n"
VALIDATION_ONLY = f"_acme-challenge.whoop CNAME {TOKEN}.{VALIDATION_DOMAIN}.\n"


def check(servers, records, **kwargs) -> CheckResult:
    """check_domain against *servers* only; JSON round trip checked.

    Checks that expect a server to stay silent pass ``timeout=TIMEOUT`` (short).
    """
    kwargs.setdefault("timeout", ANSWER_TIMEOUT)
    result = check_domain(HOSTNAME, records, nameservers=[s.address for s in servers], **kwargs)
    # Stored as JSON and shown later: every result must survive the round trip.
    again = CheckResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result
    assert set(result.codes()) <= set(FINDING_CODES)
    return result


def only(result: CheckResult, code: str, record: str | None = HOSTNAME):
    """The single finding with *code* about *record*."""
    matches = [f for f in result.findings if f.code == code and f.record == record]
    assert len(matches) == 1, result.findings
    return matches[0]


def state_of(result: CheckResult, name: str) -> str:
    return next(r.state for r in result.records if r.record.name == name)


# ------------------------------------------------------------------ statuses


def test_correct_records_verify(serve, records):
    server = serve(CORRECT)
    result = check([server], records)
    assert result.status == "verified"
    assert result.findings == []
    assert not result.temporary
    assert result.zone == "acme.test"
    assert [r.state for r in result.records] == ["ok", "ok"]
    assert [r.record.label for r in result.records] == ["whoop", "_acme-challenge.whoop"]
    assert result.nameservers == [f"127.0.0.1:{server.port}"]
    assert result.records[0].seen[result.nameservers[0]] == [f"CNAME {CNAME_TARGET}."]


def test_missing_records_are_pending_with_the_soa_negative_ttl(serve, records):
    result = check([serve("")], records)
    assert result.status == "pending_dns"
    finding = only(result, "record_missing")
    assert finding.severity == "pending"
    assert "(the name does not exist)" in finding.message
    # min(SOA TTL 3600, SOA MINIMUM 120) = 120 s
    assert "up to 2 minutes" in finding.message
    assert result.records[0].negative_ttl == 120
    assert "Name `whoop`" in finding.fix and f"Value `{CNAME_TARGET}.`" in finding.fix
    validation = only(result, "record_missing", VALIDATION_NAME)
    assert "Name `_acme-challenge.whoop`" in validation.fix
    assert f"`{TOKEN}.{VALIDATION_DOMAIN}.`" in validation.fix


def test_negative_ttl_is_the_soa_ttl_when_lower_than_minimum(serve, records):
    result = check([serve("", soa_ttl=60, minimum=3600)], records)
    assert result.records[0].negative_ttl == 60
    assert "up to 1 minute " in only(result, "record_missing").message


def test_missing_name_with_records_below_it_is_nodata(serve, records):
    # _acme-challenge.whoop exists, so whoop is an empty non-terminal: NODATA, not NXDOMAIN.
    result = check([serve(VALIDATION_ONLY)], records)
    finding = only(result, "record_missing")
    assert "does not exist" not in finding.message
    assert finding.seen == ["no records"]
    assert state_of(result, VALIDATION_NAME) == "ok"
    assert result.status == "pending_dns"


def test_records_added_later_verify_on_the_next_check(serve, records):
    server = serve("")
    assert check([server], records).status == "pending_dns"
    server.load_zone(zone("acme.test", CORRECT))
    asked = len(server.queries)
    assert check([server], records).status == "verified"
    # Nothing was cached between the two checks: the server was asked again.
    assert len(server.queries) > asked


# ------------------------------------------------------------ misconfigurations


def test_wrong_target_says_what_it_currently_resolves_to(serve, records):
    result = check([serve("whoop CNAME old-lb.example.net.\n" + VALIDATION_ONLY)], records)
    assert result.status == "misconfigured"
    finding = only(result, "wrong_target")
    assert finding.severity == "error"
    assert "currently resolves to `old-lb.example.net.`" in finding.message
    assert finding.seen == ["CNAME old-lb.example.net."]
    assert f"set its Value to `{CNAME_TARGET}.`" in finding.fix
    assert state_of(result, HOSTNAME) == "misconfigured"


def test_zone_typed_twice_in_the_name_field(serve, records):
    body = f"whoop.acme.test CNAME {CNAME_TARGET}.\n" + VALIDATION_ONLY  # no final dot
    result = check([serve(body)], records)
    assert result.status == "misconfigured"
    finding = only(result, "zone_duplicated")
    assert "whoop.acme.test.acme.test" in finding.message
    assert "enter only `whoop` in the Name field" in finding.fix
    assert "set its Value" not in finding.fix  # the value itself was right


def test_zone_typed_twice_for_the_validation_record_with_a_wrong_value(serve, records):
    body = ROUTING_ONLY + "_acme-challenge.whoop.acme.test CNAME wrong.example.\n"
    result = check([serve(body)], records)
    finding = only(result, "zone_duplicated", VALIDATION_NAME)
    assert "enter only `_acme-challenge.whoop` in the Name field" in finding.fix
    assert f"set its Value to `{TOKEN}.{VALIDATION_DOMAIN}.`" in finding.fix


def test_zone_appended_to_the_target(serve, records):
    body = f"whoop CNAME {CNAME_TARGET}\n" + VALIDATION_ONLY  # no final dot on the value
    result = check([serve(body)], records)
    finding = only(result, "target_zone_appended")
    assert f"`{CNAME_TARGET}.acme.test.`" in finding.message
    assert result.status == "misconfigured"


def test_address_instead_of_cname_means_proxied_or_flattened(serve, records):
    body = "whoop A 104.16.0.1\nwhoop AAAA 2606:4700::1\n" + VALIDATION_ONLY
    result = check([serve(body)], records)
    finding = only(result, "address_instead_of_cname")
    assert "DNS only" in finding.fix
    assert "proxied" in finding.message
    assert sorted(finding.seen) == ["A 104.16.0.1", "AAAA 2606:4700::1"]
    assert result.status == "misconfigured"


def test_cname_beside_other_records_conflicts(serve, records):
    body = CORRECT + 'whoop A 192.0.2.7\nwhoop TXT "left over"\n'
    result = check([serve(body, lenient=True)], records)
    finding = only(result, "conflicting_records")
    assert "A 192.0.2.7" in finding.fix and 'TXT "left over"' in finding.fix
    assert f"CNAME {CNAME_TARGET}." not in finding.fix.split("(")[1]
    assert result.status == "misconfigured"


def test_txt_where_a_cname_is_expected(serve, records):
    body = ROUTING_ONLY + '_acme-challenge.whoop TXT "old-acme-token"\n'
    result = check([serve(body)], records)
    finding = only(result, "wrong_type", VALIDATION_NAME)
    assert "TXT data where a CNAME record is expected" in finding.message
    assert "Delete the TXT record named `_acme-challenge.whoop`" in finding.fix
    assert result.status == "misconfigured"


def test_cname_to_garbage_is_a_finding_not_an_exception(serve, records):
    body = "whoop CNAME \\000bad\\032label\\255.example.\n" + VALIDATION_ONLY
    result = check([serve(body)], records)
    finding = only(result, "wrong_target")
    assert "\\000bad\\032label\\255.example." in finding.message
    assert result.status == "misconfigured"


def test_wildcard_answering_instead_of_a_record(serve, records):
    result = check([serve("* A 198.51.100.9\n")], records)
    finding = only(result, "wildcard")
    assert finding.severity == "error"
    assert "*.acme.test" in finding.message and "A 198.51.100.9" in finding.message
    assert "address_instead_of_cname" not in result.codes()
    assert result.status == "misconfigured"


def test_wildcard_pointing_here_works_but_warns(serve):
    # A wildcard can only serve the routing name when nothing exists below it, so use
    # an issuer-supplied validation record elsewhere in the zone.
    issuer = make_issuer_record("_cm-42.acme.test", "TXT", '"proof-42"', HOSTNAME)
    records = expected_records(HOSTNAME, CNAME_TARGET, None, None, issuer)
    body = f'* CNAME {CNAME_TARGET}.\n_cm-42 TXT "proof-42"\n'
    result = check([serve(body)], records)
    assert result.status == "verified"
    finding = only(result, "wildcard")
    assert finding.severity == "warning"
    assert "also add an explicit CNAME record with Name `whoop`" in finding.fix


def test_wildcard_is_not_mistaken_for_a_zone_typed_twice(serve, records):
    # whoop.acme.test is an empty non-terminal, and *.acme.test answers for
    # whoop.acme.test.acme.test: that is the wildcard, not a duplicated zone.
    result = check([serve(f"* CNAME {CNAME_TARGET}.\n" + VALIDATION_ONLY)], records)
    assert "zone_duplicated" not in result.codes()
    assert only(result, "record_missing").seen == ["no records"]


# ----------------------------------------------------------------------- CAA


def test_caa_forbidding_the_ca(serve, records):
    result = check([serve(CORRECT + '@ CAA 0 issue "digicert.com"\n')], records)
    assert result.status == "misconfigured"
    finding = only(result, "caa_forbids", None)
    assert "digicert.com" in finding.message
    assert 'Add a CAA record at `@` with Value `0 issue "letsencrypt.org"`' in finding.fix


def test_caa_allowing_the_ca_or_another_ca_parameter(serve, records):
    server = serve(CORRECT + '@ CAA 0 issue "letsencrypt.org; validationmethods=dns-01"\n')
    assert check([server], records).status == "verified"
    assert "caa_forbids" in check([server], records, ca="pki.goog").codes()
    assert check([server], records, ca=None).status == "verified"


def test_caa_issue_semicolon_forbids_everyone(serve, records):
    result = check([serve(CORRECT + '@ CAA 0 issue ";"\n')], records)
    assert "allow only (no one)" in only(result, "caa_forbids", None).message


def test_caa_closest_to_the_name_decides(serve):
    # The set at deep.acme.test is found first and has no "issue" tag, so any CA may
    # issue for non-wildcard names: acme.test's "no one" is never reached (RFC 8659 §4).
    host = "whoop.deep.acme.test"
    body = f"whoop.deep CNAME {CNAME_TARGET}.\n"
    body += f"_acme-challenge.whoop.deep CNAME {TOKEN}.{VALIDATION_DOMAIN}.\n"
    body += '@ CAA 0 issue ";"\ndeep CAA 0 issuewild "digicert.com"\n'
    server = serve(body)
    records = expected_records(host, CNAME_TARGET, VALIDATION_DOMAIN, TOKEN)
    result = check_domain(host, records, nameservers=[server.address], timeout=ANSWER_TIMEOUT)
    assert result.status == "verified", result.findings
    assert [r.record.label for r in result.records] == [
        "whoop.deep",
        "_acme-challenge.whoop.deep",
    ]


def test_caa_at_the_cname_target_counts(serve, records):
    # RFC 8659: the CAA set at the hostname is found by following its CNAME, so our own
    # target's CAA decides before acme.test's is ever looked at.
    ours = zone("whoopadmin.test", 'edge A 127.0.0.10\nedge CAA 0 issue "letsencrypt.org"\n')
    server = serve(CORRECT + '@ CAA 0 issue "digicert.com"\n', extra={"whoopadmin.test": ours})
    assert check([server], records).status == "verified"
    ours = zone("whoopadmin.test", 'edge A 127.0.0.10\nedge CAA 0 issue "sectigo.com"\n')
    server.load_zone(ours)
    finding = only(check([server], records), "caa_forbids", None)
    assert f"whoop.acme.test is a CNAME to {CNAME_TARGET}" in finding.seen[0]


def test_caa_unknown_critical_property_forbids(serve, records):
    result = check([serve(CORRECT + '@ CAA 128 tbs "whatever"\n')], records)
    assert "critical" in only(result, "caa_forbids", None).message


# ---------------------------------------------------- several nameservers, trouble


def test_nameservers_that_disagree_are_propagating(serve, records):
    new, old = serve(CORRECT), serve(VALIDATION_ONLY)
    result = check([new, old], records)
    assert result.status == "propagating"
    finding = only(result, "nameservers_disagree")
    assert finding.seen == [
        f"127.0.0.1:{new.port}: CNAME {CNAME_TARGET}.",
        f"127.0.0.1:{old.port}: no records",  # an empty non-terminal: NODATA
    ]
    assert state_of(result, HOSTNAME) == "propagating"
    assert state_of(result, VALIDATION_NAME) == "ok"
    assert "record_missing" not in result.codes()


def test_nameservers_that_disagree_and_are_all_wrong_are_misconfigured(serve, records):
    one = serve("whoop CNAME old.example.net.\n" + VALIDATION_ONLY)
    two = serve(VALIDATION_ONLY)
    result = check([one, two], records)
    assert result.status == "misconfigured"
    assert {"nameservers_disagree", "wrong_target", "record_missing"} <= set(result.codes())


def test_a_timeout_is_temporary_and_never_a_failure_by_itself(serve, records):
    good, dead = serve(CORRECT), serve(CORRECT)
    dead.set_fault("drop")
    started = time.monotonic()
    result = check([good, dead], records, timeout=TIMEOUT)
    assert time.monotonic() - started < 5
    assert result.temporary
    assert result.status == "verified"  # the server that answered has everything right
    finding = only(result, "timeout")
    assert finding.severity == "temporary"
    assert f"127.0.0.1:{dead.port}" in finding.message
    assert "retried automatically" in finding.fix
    # CAA above the zone is not asked of servers that don't serve it: no spurious timeout.
    assert all(f.record for f in result.findings)


def test_all_nameservers_timing_out_is_inconclusive(serve, records):
    server = serve(CORRECT)
    server.set_fault("drop")
    result = check([server], records, timeout=TIMEOUT)
    assert result.temporary and not result.answered
    assert result.status == "pending_dns"
    assert result.codes() == ["timeout"]
    with pytest.raises(DNSTemporaryError) as excinfo:
        find_zone(HOSTNAME, [server.address], timeout=TIMEOUT)
    assert excinfo.value.code == "timeout"


def test_servfail_is_temporary(serve, records):
    server = serve(CORRECT)
    server.set_fault("servfail", HOSTNAME, rdtypes=["CNAME"])
    result = check([server], records)
    finding = only(result, "servfail")
    assert finding.severity == "temporary"
    assert state_of(result, HOSTNAME) == "unknown"
    assert result.status == "pending_dns" and result.temporary


def test_a_server_not_serving_the_zone_is_a_lame_nameserver(serve, records):
    good, lame = serve(CORRECT), serve(None)
    result = check([good, lame], records)
    assert only(result, "lame_nameserver").severity == "temporary"
    assert result.status == "verified"


def test_garbage_from_a_server_is_a_finding_not_an_exception(serve, records):
    server = serve(CORRECT)
    server.set_fault("garbage", HOSTNAME, rdtypes=["CNAME"])
    result = check([server], records)
    assert only(result, "bad_response").severity == "temporary"
    assert result.temporary


# --------------------------------------------------------------- zone and apex


def test_find_zone(serve):
    server = serve(CORRECT)
    assert find_zone(HOSTNAME, [server.address], timeout=ANSWER_TIMEOUT) == "acme.test"
    assert find_zone("Deep.Below.Whoop.ACME.test.", [server.address]) == "acme.test"
    assert find_zone("acme.test", [server.address]) == "acme.test"


def test_find_zone_of_a_domain_nobody_serves(serve):
    server = serve(CORRECT)
    with pytest.raises(ZoneNotFound):
        find_zone("whoop.unknown.example", [server.address], timeout=ANSWER_TIMEOUT)


def test_zone_apex_is_refused(serve):
    server = serve(CORRECT)
    records = expected_records("acme.test", CNAME_TARGET, VALIDATION_DOMAIN, TOKEN)
    result = check_domain(
        "acme.test", records, nameservers=[server.address], timeout=ANSWER_TIMEOUT
    )
    assert result.status == "misconfigured"
    assert result.codes() == ["apex"]
    assert "apex" in result.findings[0].message


def test_hostname_delegated_as_its_own_zone_is_an_apex(serve, records):
    server = serve(CORRECT, extra={"whoop.acme.test": zone("whoop.acme.test")})
    assert find_zone(HOSTNAME, [server.address]) == HOSTNAME
    assert check([server], records).codes() == ["apex"]


def test_zone_not_found_is_pending(serve, records):
    result = check([serve(None)], records)
    assert result.status == "pending_dns"
    assert result.codes() == ["zone_not_found"]
    assert not result.temporary


# ------------------------------------------------------------ issuer records


def test_issuer_txt_record(serve):
    issuer = make_issuer_record(f"_x1.{HOSTNAME}", "TXT", "v=proof 123", HOSTNAME)
    records = expected_records(HOSTNAME, CNAME_TARGET, None, None, issuer)
    server = serve(ROUTING_ONLY + '_x1.whoop TXT "something else" "v=proof 123"\n')
    result = check([server], records, ca=None)
    assert result.status == "misconfigured"
    finding = only(result, "wrong_value", f"_x1.{HOSTNAME}")
    assert '"v=proof 123"' in finding.fix
    # Several TXT values at one name are normal; one of them must match.
    server.load_zone(
        zone("acme.test", ROUTING_ONLY + '_x1.whoop TXT "other"\n_x1.whoop TXT "v=proof " "123"\n')
    )
    assert check([server], records, ca=None).status == "verified"


def test_issuer_cname_record(serve):
    issuer = make_issuer_record(f"_abc.{HOSTNAME}", "CNAME", "_def.acm-validations.aws", HOSTNAME)
    records = expected_records(HOSTNAME, CNAME_TARGET, None, None, issuer)
    server = serve(ROUTING_ONLY + "_abc.whoop CNAME _def.acm-validations.aws.\n")
    assert check([server], records, ca="amazon.com").status == "verified"
    server.load_zone(zone("acme.test", ROUTING_ONLY))
    result = check([server], records, ca="amazon.com")
    assert "Name `_abc.whoop`" in only(result, "record_missing", f"_abc.{HOSTNAME}").fix


# -------------------------------------------------------- nameserver discovery


def test_resolving_the_zone_ns_records_with_an_injected_port(serve, records):
    # Two servers on one port, at the addresses the zone's NS records give.
    ns = {"ns1": "127.0.0.2", "ns2": "127.0.0.3"}
    first = serve(CORRECT, host="127.0.0.2", ns=ns)
    second = serve(ROUTING_ONLY, host="127.0.0.3", port=first.port, ns=ns)
    result = check_domain(
        HOSTNAME,
        records,
        nameservers=[first.address],  # only to discover the zone and its NS
        resolve_ns=True,
        ns_port=first.port,
        timeout=ANSWER_TIMEOUT,
    )
    assert result.nameservers == ["ns1.acme.test (127.0.0.2)", "ns2.acme.test (127.0.0.3)"]
    assert result.status == "propagating"
    assert state_of(result, VALIDATION_NAME) == "propagating"
    assert (VALIDATION_NAME, "CNAME") in second.queries


def test_parse_nameservers():
    assert parse_nameservers("127.0.0.1:5353, 127.0.0.2") == [
        ("127.0.0.1", 5353),
        ("127.0.0.2", 53),
    ]
    assert parse_nameservers("[::1]:5300,::1") == [("::1", 5300), ("::1", 53)]
    assert parse_nameservers("") is None and parse_nameservers(None) is None
    for bad in ("localhost:53", "127.0.0.1:x", "127.0.0.1:70000"):
        with pytest.raises(ValueError):
            parse_nameservers(bad)


def test_caa_timeout_inside_the_zone_is_temporary(serve, records):
    server = serve(CORRECT)
    server.set_fault("drop", "acme.test", rdtypes=["CAA"])
    result = check([server], records, timeout=TIMEOUT)
    finding = only(result, "timeout", None)
    assert "CAA" in finding.message
    assert result.temporary and result.status == "verified"


def test_a_domain_only_its_tld_knows_is_not_found(serve, records):
    server = serve(None, extra={"test": zone("test")})
    with pytest.raises(ZoneNotFound):
        find_zone(HOSTNAME, [server.address], timeout=ANSWER_TIMEOUT)
    assert check([server], records).codes() == ["zone_not_found"]


def test_servfail_while_finding_the_zone_is_temporary(serve, records):
    server = serve(CORRECT)
    server.set_fault("servfail")
    with pytest.raises(DNSTemporaryError) as excinfo:
        find_zone(HOSTNAME, [server.address], timeout=ANSWER_TIMEOUT)
    assert excinfo.value.code == "servfail"
    result = check([server], records)
    assert result.codes() == ["servfail"] and result.temporary and not result.answered


def test_nameservers_without_addresses(serve, records):
    text = (
        "$ORIGIN acme.test.\n$TTL 300\n"
        "@ SOA ns1.elsewhere.test. hostmaster 1 7200 900 1209600 120\n"
        "@ NS ns1.elsewhere.test.\n" + CORRECT
    )
    server = serve(None, extra={"acme.test": text})
    result = check_domain(
        HOSTNAME, records, nameservers=[server.address], resolve_ns=True, timeout=ANSWER_TIMEOUT
    )
    assert result.codes() == ["no_nameservers"]
    assert result.temporary and result.status == "pending_dns"


def test_refuse_apex_for_the_subdomain_form(serve):
    server = serve(CORRECT)
    assert refuse_apex(HOSTNAME, [server.address], timeout=ANSWER_TIMEOUT) == "acme.test"
    with pytest.raises(InvalidHostname) as excinfo:
        refuse_apex("ACME.test.", [server.address], timeout=ANSWER_TIMEOUT)
    assert excinfo.value.reason == "apex"
    assert "whoop.acme.test" in str(excinfo.value)
    # DNS that cannot tell does not block the form; the check reports it later.
    assert refuse_apex("whoop.unknown.example", [server.address], timeout=ANSWER_TIMEOUT) is None
    server.set_fault("drop")
    assert refuse_apex(HOSTNAME, [server.address], timeout=TIMEOUT) is None
