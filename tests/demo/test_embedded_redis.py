"""One embedded Redis per instance folder, shared by every process, stopped only by its starter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from tests.demo.support import clean_env, whoopadmin
from whoopadmin import create_app
from whoopadmin.redisconn import EmbeddedRedis, get_redis

# A whoopadmin process that uses the embedded Redis of argv[1], says whether it started
# it and which server it uses, then holds on until its standard input closes.
HOLDER = textwrap.dedent(
    """
    import sys
    from whoopadmin.redisconn import EmbeddedRedis

    embedded = EmbeddedRedis(sys.argv[1])
    embedded.ensure()
    print(int(embedded.owner), embedded.info().get("pid"), flush=True)
    sys.stdin.read()
    """
)


def _holder(folder: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _report(holder: subprocess.Popen) -> tuple[bool, int]:
    owner, pid = holder.stdout.readline().split()
    return owner == "1", int(pid)


def _release(holder: subprocess.Popen) -> None:
    holder.stdin.close()
    assert holder.wait(30) == 0
    holder.stdout.close()


def _cleanup(*holders: subprocess.Popen | None) -> None:
    for holder in holders:
        if holder is not None:
            holder.kill()
            holder.wait()
            for pipe in (holder.stdin, holder.stdout):
                if not pipe.closed:
                    pipe.close()


def _answers(folder: Path) -> bool:
    return EmbeddedRedis(folder).answers()


def _gone(pid: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _stop_server(folder: Path) -> None:
    """Clean-up after a failed test: stop whatever server the folder records."""
    try:
        pid = json.loads((folder / "redis.json").read_text())["pid"]
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError, KeyError):
        pass


def test_two_commands_started_at_once_share_one_server_and_only_the_starter_stops_it(tmp_path):
    folder = tmp_path / "instance"
    first, second = _holder(folder), _holder(folder)  # racing for the lock file
    try:
        reports = [_report(first), _report(second)]
        assert sorted(owner for owner, _ in reports) == [False, True], reports
        assert reports[0][1] == reports[1][1]  # one server
        server = reports[0][1]
        starter, attached = (first, second) if reports[0][0] else (second, first)

        _release(attached)  # a plain client exits: the server stays
        assert _answers(folder)
        assert psutil.pid_exists(server)

        _release(starter)  # the starter exits: it stops the server, saving the data
        assert _gone(server)
        assert not (folder / "redis.json").exists()
        assert (folder / "redis.db").exists()
    finally:
        _cleanup(first, second)
        _stop_server(folder)


def test_a_stale_record_from_a_crashed_starter_gets_a_new_server(tmp_path):
    folder = tmp_path / "instance"
    folder.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    # What a starter killed with SIGKILL (and its server gone, e.g. a reboot) leaves.
    (folder / "redis.json").write_text(
        json.dumps({"pid": dead.pid, "socket": str(folder / "redis.sock"), "owner": dead.pid})
    )
    (folder / "redis.sock").write_text("not a socket any more")
    holder = _holder(folder)
    try:
        owner, server = _report(holder)
        assert owner and server != dead.pid
        assert _answers(folder)
        _release(holder)
        assert _gone(server)
    finally:
        _cleanup(holder)
        _stop_server(folder)


def test_a_server_whose_starter_was_killed_is_adopted_and_stopped_by_the_next(tmp_path):
    folder = tmp_path / "instance"
    crashed, adopter = _holder(folder), None
    try:
        owner, server = _report(crashed)
        assert owner
        crashed.kill()  # SIGKILL: no exit handler runs, the server keeps running
        crashed.wait()
        crashed.stdout.close()
        assert _answers(folder)

        adopter = _holder(folder)
        owner, same = _report(adopter)
        assert owner and same == server  # attached to it, and owns it now
        assert json.loads((folder / "redis.json").read_text())["owner"] == adopter.pid
        _release(adopter)
        assert _gone(server)
    finally:
        _cleanup(crashed, adopter)
        _stop_server(folder)


def test_a_forked_child_of_the_starter_does_not_stop_the_server(tmp_path):
    folder = tmp_path / "instance"
    script = textwrap.dedent(
        """
        import os, sys
        import redis
        from whoopadmin.redisconn import EmbeddedRedis

        embedded = EmbeddedRedis(sys.argv[1])
        embedded.ensure()
        child = os.fork()
        if child == 0:
            sys.exit(0)  # a normal exit: the exit handlers inherited from the parent run
        os.waitpid(child, 0)
        print(redis.Redis(unix_socket_path=str(embedded.socket)).ping(), flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    assert not (folder / "redis.json").exists()  # and the parent stopped it at its exit


def test_the_embedded_server_starts_on_first_use_only(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("WHOOPADMIN_"):
            monkeypatch.delenv(name)
    folder = tmp_path / "instance"
    app = create_app({"INSTANCE_PATH": str(folder)})
    embedded: EmbeddedRedis = app.extensions["whoopadmin.embedded_redis"]
    try:
        assert app.config["REDIS_URL"] == f"unix://{folder / 'redis.sock'}"
        assert not (folder / "redis.json").exists()  # the database alone needs no Redis
        assert get_redis(app).ping()
        assert embedded.owner and (folder / "redis.json").exists()
    finally:
        client = app.extensions.get("whoopadmin.redis")
        if client is not None:
            client.close()
        embedded.stop()
    assert not (folder / "redis.json").exists()


def test_database_commands_start_no_redis(tmp_path):
    env = clean_env(tmp_path / "instance")
    created = whoopadmin(
        ["users", "create", "op@example.com", "--role", "operator", "--password-stdin"],
        env,
        tmp_path,
        stdin="a-good-long-password\n",
    )
    assert created.returncode == 0, created.stderr
    listed = whoopadmin(["users", "list"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "op@example.com\toperator\tactive" in listed.stdout
    assert (tmp_path / "instance" / "whoopadmin.sqlite3").exists()
    for name in ("redis.json", "redis.log", "redis.sock", "redis.lock"):
        assert not (tmp_path / "instance" / name).exists(), name


@pytest.mark.parametrize("folder", ["a-file/instance", "instance"])
def test_an_unusable_instance_folder_is_a_message_not_a_traceback(tmp_path, folder):
    (tmp_path / "a-file").write_text("a file where a folder should be")
    if folder == "instance":
        # Root ignores permissions: make the folder unusable by its kind, not its mode.
        (tmp_path / "instance").mkdir()
        (tmp_path / "instance" / "secret_key").mkdir()
    done = whoopadmin(["users", "list"], clean_env(tmp_path / folder), tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert "Error:" in done.stderr
    assert str(tmp_path) in done.stderr
