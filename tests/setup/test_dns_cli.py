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
    assert json.loads(result.output) == {"status": "verified", "findings": []}


def test_wrong_target_exits_one_with_findings(runner, records):
    result = _invoke(runner, records, "bad.acme.test", "--target", "edge.whoopadmin.test", "--json")
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["status"] == "misconfigured"
    assert [f["code"] for f in data["findings"]] == ["wrong_target"]
    assert "lb.elsewhere.example" in data["findings"][0]["message"]


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
