"""The whoopadmin command: staff accounts from the CLI, with bad arguments refused."""

import pytest
from sqlalchemy import select

from whoopadmin.audit import AuditEvent
from whoopadmin.auth.models import StaffUser
from whoopadmin.extensions import db


def test_users_create_from_stdin(app, runner):
    result = runner.invoke(
        args=["users", "create", "First@Example.com", "--role", "operator", "--password-stdin"],
        input="a-good-long-password\n",
    )
    assert result.exit_code == 0, result.output
    assert "Created operator first@example.com" in result.output
    assert "a-good-long-password" not in result.output
    with app.app_context():
        user = db.session.scalar(select(StaffUser))
        assert user.email == "first@example.com" and user.role == "operator"
        assert user.check_password("a-good-long-password")
        event = db.session.scalar(select(AuditEvent))
        assert (event.actor, event.action) == ("cli", "staff.create")


def test_users_create_with_prompt(app, runner):
    result = runner.invoke(
        args=["users", "create", "s@example.com", "--role", "support"],
        input="prompted-password\nprompted-password\n",
    )
    assert result.exit_code == 0, result.output
    listed = runner.invoke(args=["users", "list"])
    assert "s@example.com\tsupport\tactive" in listed.output


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["bad-email", "--role", "operator"], "a-good-long-password\n", "Not a valid e-mail"),
        (
            ["a@example.com", "--role", "admin"],
            "a-good-long-password\n",
            "Invalid value for '--role'",
        ),
        (["a@example.com"], "a-good-long-password\n", "Missing option '--role'"),
        (["a@example.com", "--role", "operator"], "short\n", "at least 12"),
        (["a@example.com", "--role", "operator"], "password1234\n", "less common password"),
        (["a@example.com", "--role", "operator"], "", "no password on standard input"),
    ],
)
def test_users_create_bad_arguments(app, runner, args, stdin, message):
    result = runner.invoke(args=["users", "create", *args, "--password-stdin"], input=stdin)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    with app.app_context():
        assert db.session.scalar(select(db.func.count(StaffUser.id))) == 0


def test_users_create_duplicate_keeps_the_original(app, runner):
    args = ["users", "create", "a@example.com", "--role", "operator", "--password-stdin"]
    assert runner.invoke(args=args, input="first-password-1\n").exit_code == 0
    again = runner.invoke(args=args, input="second-password-2\n")
    assert again.exit_code == 1 and "already exists" in again.output
    with app.app_context():
        assert db.session.scalar(select(StaffUser)).check_password("first-password-1")


def test_demo_seeds_accounts_once(app):
    from whoopadmin.auth import service
    from whoopadmin.demo import DEMO_ACCOUNTS, seed_accounts

    with app.app_context():
        seed_accounts()
        seed_accounts()  # a second run reuses what is there
        for email, role, password in DEMO_ACCOUNTS:
            user = service.authenticate(email, password)
            assert user is not None and user.role == role
        assert db.session.scalar(select(db.func.count(StaffUser.id))) == len(DEMO_ACCOUNTS)


def test_demo_request_log_hides_tokens_and_codes():
    import io
    import logging

    from whoopadmin.demo import RedactingRequestHandler

    handler = RedactingRequestHandler.__new__(RedactingRequestHandler)
    stream = io.StringIO()
    log_handler = logging.StreamHandler(stream)
    logging.getLogger("werkzeug").addHandler(log_handler)
    try:
        for path in ("/connect/SECRETTOKEN123", "/auth/whoop/oauth2?code=SECRETCODE&state=S7"):
            handler.path, handler.command, handler.request_version = path, "GET", "HTTP/1.1"
            handler.client_address = ("127.0.0.1", 1)
            handler.log_request(200, 10)
    finally:
        logging.getLogger("werkzeug").removeHandler(log_handler)
    logged = stream.getvalue()
    assert "/connect/<token>" in logged and "/auth/whoop/oauth2 " in logged
    for secret in ("SECRETTOKEN123", "SECRETCODE", "S7"):
        assert secret not in logged


def _redis_servers(folder) -> set[int]:
    """redis-server processes of ``folder`` (other suites on the machine start their own)."""
    import psutil

    return {
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if any("redis-server" in part for part in (p.info["cmdline"] or []))
        and str(folder) in " ".join(p.info["cmdline"] or [])
    }


def test_sigterm_stops_the_embedded_redis(tmp_path):
    """`whoopadmin run` stopped with SIGTERM leaves no redis-server behind."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    import psutil

    env = {k: v for k, v in os.environ.items() if not k.startswith("WHOOPADMIN_")}
    env["WHOOPADMIN_INSTANCE_PATH"] = str(tmp_path / "instance")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    before = _redis_servers(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "whoopadmin.cli", "run", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        started = _redis_servers(tmp_path) - before
        assert started, "no embedded redis-server was started"
        process.send_signal(signal.SIGTERM)
        process.wait(20)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(psutil.pid_exists(pid) for pid in started):
            time.sleep(0.1)
        alive = [pid for pid in started if psutil.pid_exists(pid)]
        assert not alive, alive
    finally:
        if process.poll() is None:
            process.kill()


def test_users_password_link_and_reset_mfa(app, runner):
    """A locked-out last operator gets back in from a shell: a set-password link, and a
    second factor removed."""
    from tests.factories import make_totp
    from tests.helpers import AuthActions, csrf_from
    from whoopadmin.audit import AuditEvent
    from whoopadmin.mfa.models import TotpDevice

    args = ["users", "create", "a@example.com", "--role", "operator", "--password-stdin"]
    runner.invoke(args=args, input="first-password-1\n")
    with app.app_context():
        make_totp(db.session.scalar(select(StaffUser)))
    result = runner.invoke(args=["users", "password-link", "A@Example.com"])
    assert result.exit_code == 0, result.output
    path = result.stdout.strip()
    assert path.startswith("/set-password/")
    client = app.test_client()
    token = csrf_from(client.get(path).get_data(as_text=True))
    data = {"password": "a-brand-new-passphrase", "confirm": "a-brand-new-passphrase"}
    assert client.post(path, data={**data, "csrf_token": token}).headers["Location"] == "/login"
    assert runner.invoke(args=["users", "reset-mfa", "a@example.com"]).exit_code == 0
    with app.app_context():
        assert db.session.scalar(select(TotpDevice)) is None
        actions = db.session.scalars(select(AuditEvent.action)).all()
    assert {"staff.password_link", "staff.password_set", "staff.mfa_reset"} <= set(actions)
    auth = AuthActions(app.test_client())
    assert auth.login("a@example.com", "a-brand-new-passphrase").headers["Location"] == "/"
    for command in ("password-link", "reset-mfa"):
        missing = runner.invoke(args=["users", command, "nobody@example.com"])
        assert missing.exit_code == 1 and "No staff account" in missing.output
