"""``whoopadmin dns check``: the wizard's checks from the command line."""

import json

import pytest

from tests.helpers import zone


@pytest.fixture
def records(dns):
    dns.load_zone(
        zone(
            "acme.test",
            "whoop CNAME edge.whoopadmin.test.\n"
            "_acme-challenge.whoop CNAME tok123.acme-dns.whoopadmin.test.\n"
            "bad CNAME lb.elsewhere.example.\n",
        ),
        origin="acme.test",
    )
    return dns


def _invoke(runner, dns, *args):
    return runner.invoke(
        args=["dns", "check", *args, "--nameserver", f"127.0.0.1:{dns.port}", "--timeout", "0.5"]
    )


def test_verified_exits_zero(runner, records):
    result = _invoke(
        runner,
        records,
        "whoop.acme.test",
        "--target",
        "edge.whoopadmin.test",
        "--validation-name",
        "_acme-challenge.whoop.acme.test",
        "--validation-target",
        "tok123.acme-dns.whoopadmin.test.",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "status": "verified",
        "temporary": False,
        "caa_checked_for": "letsencrypt.org",
        "findings": [],
    }


def test_wrong_target_exits_one_with_findings(runner, records):
    result = _invoke(runner, records, "bad.acme.test", "--target", "edge.whoopadmin.test", "--json")
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["status"] == "misconfigured"
    assert [f["code"] for f in data["findings"]] == ["wrong_target"]
    (finding,) = data["findings"]
    assert "lb.elsewhere.example" in finding["message"]
    assert finding["severity"] == "error" and finding["temporary"] is False
    assert finding["record"] == "bad.acme.test" and finding["fix"]


# ----------------------------------------------------------------------------- CAA

WHOOP_OK = "whoop CNAME edge.whoopadmin.test.\n"


def _caa_zone(dns, caa: str) -> None:
    dns.load_zone(zone("acme.test", WHOOP_OK + caa), origin="acme.test")


def _check(runner, dns, *args):
    return _invoke(runner, dns, "whoop.acme.test", "--target", "edge.whoopadmin.test", *args)


def test_caa_that_allows_only_another_ca_is_not_verified(runner, dns):
    _caa_zone(dns, '@ CAA 0 issue "other-ca.example"\n')
    result = _check(runner, dns, "--json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert data["status"] == "misconfigured" and data["caa_checked_for"] == "letsencrypt.org"
    (finding,) = data["findings"]
    assert finding["code"] == "caa_forbids"
    assert finding["severity"] == "error" and finding["temporary"] is False
    assert "other-ca.example" in finding["message"]
    assert '0 issue "letsencrypt.org"' in finding["fix"]
    # The text output says the same, with the severity.
    text = _check(runner, dns)
    assert text.exit_code == 1
    assert "whoop.acme.test: misconfigured" in text.output
    assert "[caa_forbids] error:" in text.output


def test_caa_is_checked_for_the_configured_ca_or_the_one_named(runner, dns, monkeypatch):
    _caa_zone(dns, '@ CAA 0 issue "other-ca.example"\n')
    assert _check(runner, dns, "--ca", "Other-CA.example.").exit_code == 0
    assert _check(runner, dns, "--ca", "letsencrypt.org").exit_code == 1
    skipped = _check(runner, dns, "--no-caa", "--json")
    assert skipped.exit_code == 0
    assert json.loads(skipped.output)["caa_checked_for"] is None
    # The command reads the settings without building the app: from the environment.
    monkeypatch.setenv("WHOOPADMIN_ACME_CA", "other-ca.example")
    assert _check(runner, dns).exit_code == 0
    _caa_zone(dns, '@ CAA 0 issue "letsencrypt.org"\n')
    assert _check(runner, dns).exit_code == 1


def test_caa_that_cannot_be_read_is_a_temporary_finding(runner, dns):
    _caa_zone(dns, "")
    dns.set_fault("servfail", "whoop.acme.test", rdtypes=["CAA"])
    result = _check(runner, dns, "--json")
    # As in the wizard, DNS trouble that the next check may not see fails nothing by
    # itself: the records are right, and the finding says the CAA check was not done.
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["status"] == "verified" and data["temporary"] is True
    (finding,) = data["findings"]
    assert finding["severity"] == "temporary" and finding["temporary"] is True
    # In words: no exception class names.
    assert "could not be read: every nameserver failed to answer" in finding["message"]
    assert "NoNameservers" not in result.output


@pytest.mark.parametrize("ca", ["", "x", "lets encrypt.org", "létsencrypt.org", "192.0.2.1"])
def test_a_bad_ca_name_is_a_usage_error(runner, dns, ca):
    result = _check(runner, dns, "--ca", ca)
    assert result.exit_code == 2
    assert "--ca" in result.output and "Traceback" not in result.output


def test_a_bad_configured_ca_names_its_setting(runner, dns, monkeypatch):
    monkeypatch.setenv("WHOOPADMIN_ACME_CA", "not a ca")
    result = _check(runner, dns)
    assert result.exit_code == 2 and "WHOOPADMIN_ACME_CA" in result.output
    assert _check(runner, dns, "--no-caa").exit_code == 1  # records missing: checked anyway


def test_ca_and_no_caa_together_are_a_usage_error(runner, dns):
    result = _check(runner, dns, "--ca", "letsencrypt.org", "--no-caa")
    assert result.exit_code == 2 and "not both" in result.output


def test_missing_record_text_output(runner, records):
    result = _invoke(runner, records, "nothing.acme.test", "--target", "edge.whoopadmin.test")
    assert result.exit_code == 1
    assert "nothing.acme.test: pending_dns" in result.output
    assert "[record_missing]" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["192.0.2.1", "--target", "edge.whoopadmin.test"], "IP address"),
        (["whoop.acme.test", "--target", "not a name!"], "CNAME target"),
        (["whoop.acme.test", "--target", "e.test", "--validation-name", "x"], "together"),
        (["whoop.acme.test"], "Missing option '--target'"),
    ],
)
def test_bad_arguments(runner, records, args, message):
    result = _invoke(runner, records, *args)
    assert result.exit_code == 2  # 1 is reserved for "checked, not verified"
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_nameserver(runner):
    result = runner.invoke(
        args=["dns", "check", "whoop.acme.test", "--target", "e.test", "--nameserver", "nope"]
    )
    assert result.exit_code == 2
    assert "not an IP[:PORT] nameserver" in result.output
