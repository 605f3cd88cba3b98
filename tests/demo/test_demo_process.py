"""The real ``whoopadmin demo``: other commands beside it, port options, Ctrl-C."""

from __future__ import annotations

import json
import socket
import time

import psutil
import pytest
import redis
from rq import Queue

from tests.demo.support import DemoProcess, clean_env, http_status, whoopadmin


def _no_traceback(demo: DemoProcess) -> None:
    texts = {"stdout": demo.output(), "stderr": demo.errors()}
    for log in (demo.instance / "logs").glob("*.log"):
        texts[log.name] = log.read_text(errors="replace")
    for name, text in texts.items():
        assert "Traceback" not in text, f"{name}:\n{text[-3000:]}"


def test_commands_beside_the_running_demo_leave_it_working(tmp_path, demo_database_url):
    demo = DemoProcess(tmp_path, demo_database_url).start()
    try:
        record = json.loads((demo.instance / "redis.json").read_text())
        assert record["owner"] == demo.process.pid  # the demo started the embedded Redis
        server = psutil.Process(record["pid"])
        children = demo.children()
        assert set(children) == {"worker", "cron"}

        # What the README has a newcomer type in a second terminal while the demo runs.
        listed = demo.run("users", "list")
        assert listed.returncode == 0, listed.stderr
        assert "operator@example.com\toperator\tactive" in listed.stdout
        rotated = demo.run("keys", "rotate")
        assert rotated.returncode == 0, rotated.stderr
        assert "Re-encrypted" in rotated.stdout
        helped = demo.run("demo", "--help")
        assert helped.returncode == 0 and "--sandbox-port" in helped.stdout

        # Redis, the worker and the cron are untouched, and the app is ready.
        for _ in range(10):  # a few seconds: a broken Redis shows at once
            assert http_status(f"{demo.admin}/readyz") == 200
            time.sleep(0.3)
        assert server.is_running() and json.loads((demo.instance / "redis.json").read_text()) == (
            record
        )
        assert all(child.is_running() for child in children.values())

        # And the worker still runs jobs from that Redis.
        connection = redis.Redis(unix_socket_path=record["socket"])
        try:
            job = Queue("domains", connection=connection).enqueue(
                "whoopadmin.setup.jobs.check_due_domains"
            )
            deadline = time.monotonic() + 60
            while job.get_status(refresh=True) != "finished":
                assert job.get_status() != "failed", job.latest_result()
                assert time.monotonic() < deadline, job.get_status()
                time.sleep(0.2)
        finally:
            connection.close()

        # Ctrl-C stops every part, without a traceback.
        took = demo.stop()
        assert demo.process.returncode == 0
        assert took < 20, took
        assert "Stopped: web, worker, cron, sandbox, DNS and receiver." in demo.output()
        for process in [server, *children.values()]:
            assert not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
        assert not (demo.instance / "redis.json").exists()
        for port in demo.ports.values():
            assert http_status(f"http://127.0.0.1:{port}/", timeout=1) is None
        _no_traceback(demo)
        # The console shows the banner and events; request lines go to the log file.
        assert "GET /readyz" not in demo.output()
        assert "GET /readyz" in (demo.instance / "logs" / "web.log").read_text()
    finally:
        demo.kill()


@pytest.mark.parametrize("option", ["--sandbox-port", "--dns-port", "--receiver-port", "--port"])
def test_a_port_in_use_names_the_option_to_change(tmp_path, option):
    kind = socket.SOCK_DGRAM if option == "--dns-port" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as busy:
        busy.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            busy.listen()
        port = busy.getsockname()[1]
        args = ["demo", "--port", "0", "--sandbox-port", "0", "--dns-port", "0"]
        args += ["--receiver-port", "0", option, str(port)]
        done = whoopadmin(args, clean_env(tmp_path / "instance"), tmp_path)
    assert done.returncode == 1, done.stdout
    assert f"Port {port} on 127.0.0.1 is already in use" in done.stderr
    assert f"{option} <port>" in done.stderr and f"{option} 0" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "70000 is not in the range 0<=x<=65535"),
        (["--sandbox-port", "five"], "'five' is not a valid integer"),
        (["--port", "5999", "--receiver-port", "5999"], "--port and --receiver-port are both 5999"),
    ],
)
def test_bad_port_options_are_refused_before_anything_starts(tmp_path, args, message):
    done = whoopadmin(["demo", *args], clean_env(tmp_path / "instance"), tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
