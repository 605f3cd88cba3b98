"""``whoopadmin sandbox`` starts, prints its URL and credentials, and serves them."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlsplit

from click.testing import CliRunner

from whoopadmin.sandbox.cli import sandbox_command


def test_help():
    result = CliRunner().invoke(sandbox_command, ["--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--seed", "--members", "--redirect-uri", "--webhook-url"):
        assert option in result.output


def test_a_port_in_use_is_a_message_naming_the_option():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(sandbox_command, ["--port", str(port), "--members", "0"])
    assert result.exit_code == 1
    assert f"Cannot listen on 127.0.0.1:{port}" in result.output
    assert "--port 0 picks any free one" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def _read_until(proc, marker: str, timeout: float = 20.0) -> str:
    out = ""
    deadline = time.monotonic() + timeout
    while marker not in out:
        assert time.monotonic() < deadline, out
        line = proc.stdout.readline()
        assert line, out + proc.stderr.read()
        out += line
    return out


def test_serves_what_it_prints(http):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "whoopadmin.sandbox",
            "--port",
            "0",
            "--seed",
            "4",
            "--members",
            "2",
            "--days",
            "10",
            "--client-id",
            "demo-client",
            "--redirect-uri",
            "http://127.0.0.1:9/cb",
            "--no-log-requests",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out = _read_until(proc, "Control API")
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", out).group(1)
        assert f"WHOOPADMIN_WHOOP_API_BASE={url}/developer" in out
        assert f"WHOOPADMIN_WHOOP_TOKEN_URL={url}/oauth/oauth2/token" in out
        assert f"WHOOPADMIN_WHOOP_AUTH_URL={url}/oauth/oauth2/auth" in out
        secret = re.search(r"client secret: (\S+)", out).group(1)
        members = re.findall(r"(\S+@example\.com)\s+password (\S+)", out)
        assert len(members) == 2

        # Sign in as a printed member and exchange the code with the printed secret.
        email, password = members[0]
        form = {
            "response_type": "code",
            "client_id": "demo-client",
            "redirect_uri": "http://127.0.0.1:9/cb",
            "scope": "read:profile",
            "state": "cli-test-state",
            "email": email,
            "password": password,
            "action": "approve",
        }
        resp = http.post(f"{url}/oauth/oauth2/auth", data=form, allow_redirects=False)
        code = parse_qs(urlsplit(resp.headers["Location"]).query)["code"][0]
        token = http.post(
            f"{url}/oauth/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": "http://127.0.0.1:9/cb",
                "client_id": "demo-client",
                "client_secret": secret,
            },
        ).json()
        profile = http.get(
            f"{url}/developer/v2/user/profile/basic",
            headers={"Authorization": f"Bearer {token['access_token']}"},
        ).json()
        assert profile["email"] == email
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def test_sandbox_imports_nothing_else_from_whoopadmin():
    code = (
        "import sys, whoopadmin.sandbox.cli, whoopadmin.sandbox.server;"
        "print(sorted(m for m in sys.modules if m.startswith('whoopadmin')"
        " and not m.startswith('whoopadmin.sandbox') and m != 'whoopadmin'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
