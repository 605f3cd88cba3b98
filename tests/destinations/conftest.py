"""Destinations tests: the blueprint on the test app, a real receiver on loopback, and a
network guard so nothing can leave 127.0.0.0/8 (or ::1) whatever the code under test does."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

import whoopadmin.destinations.models  # noqa: F401 - db.create_all() must see the tables
from tests.helpers import reset_schema
from whoopadmin.destinations.views import bp


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def network_guard(monkeypatch):
    """Refuse (and record) any TCP/UDP connection or name lookup that is not loopback."""
    blocked: list[str] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            blocked.append(f"connect {address[0]}")
            raise OSError(f"test network guard: no connection to {address[0]}")
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None:
            literal = True
            try:
                ipaddress.ip_address(name.split("%", 1)[0])
            except ValueError:
                literal = False
            if not literal and name.lower() not in ("localhost",):
                blocked.append(f"lookup {name}")
                raise socket.gaierror(socket.EAI_NONAME, f"test network guard: {name}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return blocked


def register(app) -> None:
    """Register the destinations blueprint if create_app does not (yet)."""
    if "destinations" not in app.blueprints:
        app.register_blueprint(bp)


@pytest.fixture
def app(make_app, wizard_config):
    """The shared test app, plus the destinations blueprint and tables."""
    app = make_app(**wizard_config)
    register(app)
    reset_schema(app)
    return app


class Receiver:
    """A real HTTP receiver on 127.0.0.1 that records requests and answers from a script."""

    def __init__(self, host: str = "127.0.0.1", ssl_context=None) -> None:
        self.host = host
        self.requests: list[dict] = []
        self.statuses: list[int] = []  # answers to the next requests; then 200
        # {n: Event}: the n-th request (1-based) is answered only once the event is set.
        self.gates: dict[int, threading.Event] = {}
        self.lock = threading.Lock()
        self.server = make_server(host, 0, self.wsgi, threaded=True, ssl_context=ssl_context)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/hooks/whoop"

    def wsgi(self, environ, start_response):
        request = Request(environ)
        body = request.get_data()
        with self.lock:
            self.requests.append(
                {
                    "path": request.full_path,
                    "headers": dict(request.headers),
                    "body": body,
                    "at": time.monotonic(),
                }
            )
            status = self.statuses.pop(0) if self.statuses else 200
            gate = self.gates.pop(len(self.requests), None)
        if gate is not None:  # hold this answer until the test opens the gate
            gate.wait(30)
        response = Response(json.dumps({"ok": status == 200}), status=status)
        return response(environ, start_response)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


@pytest.fixture
def private_ok(app):
    """Allow loopback destinations (development mode), as the receiver lives there."""
    app.config["ALLOW_PRIVATE_DESTINATIONS"] = True
    return app
