"""Commands that need neither the database nor Redis create nothing and start nothing.

Timing is in bench/cli_startup.py; here: no instance folder, no keys, no redis-server.
"""

from __future__ import annotations

import psutil
import pytest

from tests.demo.support import clean_env, whoopadmin
from whoopadmin.domains import DNSServer, zone_text


def _redis_servers_in(folder) -> list[int]:
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "redis-server" in cmdline and str(folder) in cmdline:
            found.append(process.pid)
    return found


@pytest.fixture
def dns_server():
    zone = zone_text("startup.test", "whoop CNAME edge.startup.test.\nedge A 127.0.0.1")
    with DNSServer({"startup.test": zone}) as server:
        yield server


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        [],
        ["demo", "--help"],
        ["users", "--help"],
        ["keys", "generate"],
        ["dns", "check", "whoop.startup.test", "--target", "edge.startup.test"],
        ["db", "--help"],
    ],
    ids=lambda args: " ".join(args) or "(no arguments)",
)
def test_commands_without_the_app_create_no_files(tmp_path, dns_server, args):
    if args[:2] == ["dns", "check"]:
        args = [*args, "--nameserver", f"127.0.0.1:{dns_server.port}"]
    done = whoopadmin(args, clean_env(tmp_path / "instance"), tmp_path)
    # No arguments: click shows the help and exits 2 (a usage error), as it should.
    assert done.returncode == (0 if args else 2), done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # no instance folder, no keys, no database
    assert _redis_servers_in(tmp_path) == []
    if args == ["keys", "generate"]:
        assert len(done.stdout.strip()) >= 40
    if args and args[0] == "dns":
        assert "whoop.startup.test: verified" in done.stdout
    if args in (["--help"], []):
        for command in ("demo", "dns", "keys", "users", "worker", "cron", "db", "sandbox"):
            assert f"\n  {command} " in done.stdout + done.stderr, command


def test_dns_check_reads_its_nameservers_from_the_environment(tmp_path, dns_server):
    env = clean_env(tmp_path / "instance")
    env["WHOOPADMIN_DNS_NAMESERVERS"] = f"127.0.0.1:{dns_server.port}"
    done = whoopadmin(
        ["dns", "check", "whoop.startup.test", "--target", "edge.startup.test"], env, tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []
    env["WHOOPADMIN_DNS_NAMESERVERS"] = "not-an-address"
    bad = whoopadmin(
        ["dns", "check", "whoop.startup.test", "--target", "edge.startup.test"], env, tmp_path
    )
    assert bad.returncode == 1
    assert "WHOOPADMIN_DNS_NAMESERVERS" in bad.stderr and "Traceback" not in bad.stderr


def test_configuration_warnings_are_logged_once_per_process(tmp_path, redis_url, caplog):
    from whoopadmin import create_app

    config = {"INSTANCE_PATH": str(tmp_path / "i"), "REDIS_URL": redis_url}
    for _ in range(3):  # the demo process used to print them for each app it built
        create_app(dict(config))
    messages = [r.getMessage() for r in caplog.records]
    for name in ("SECRET_KEY", "ENCRYPTION_KEYS"):
        generated = [m for m in messages if m.startswith(f"Generated WHOOPADMIN_{name}")]
        development = [m for m in messages if m.startswith(f"WHOOPADMIN_{name} comes from")]
        assert len(generated) == 1 and len(development) == 1, messages
