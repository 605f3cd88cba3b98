"""Run the sandbox on loopback in a background thread (for tests, the demo and benchmarks)."""

from __future__ import annotations

import socket
import threading
from typing import Any

from werkzeug.serving import (
    BaseWSGIServer,
    WSGIRequestHandler,
    get_sockaddr,
    make_server,
    select_address_family,
)

from . import create_sandbox_app
from .state import SandboxState


class QuietHandler(WSGIRequestHandler):
    """A request handler that logs nothing (request lines can carry states and ids)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        """Do not log requests."""


def serve_on(host: str, port: int, app, **options: Any) -> BaseWSGIServer:
    """``make_server`` on a socket bound here, so a port in use raises OSError.

    (werkzeug's own bind prints a message of its own and exits the process instead.)
    """
    family = select_address_family(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(get_sockaddr(host, port, family))
        sock.listen(128)
        server = make_server(host, port, app, fd=sock.fileno(), **options)
    finally:
        sock.close()  # the server holds its own duplicate of the socket
    server.server_port = server.server_address[1]  # what server_bind() would have set
    return server


class SandboxServer:
    """The sandbox served on ``host:port`` (port 0 picks a free one) in a daemon thread.

    >>> with SandboxServer(seed=1) as sb:
    ...     app = sb.state.create_app(redirect_uris=["http://127.0.0.1/cb"])
    ...     sb.url, sb.auth_url, sb.token_url, sb.api_base
    """

    def __init__(
        self,
        state: SandboxState | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        quiet: bool = True,
        **settings: Any,
    ) -> None:
        # In-process sandboxes serve tests, the demo and benchmarks: webhooks stay on
        # loopback unless the caller says otherwise.
        settings.setdefault("webhook_loopback_only", True)
        self.state = state or SandboxState(**settings)
        self.app = create_sandbox_app(self.state)
        self._server: BaseWSGIServer = serve_on(
            host,
            port,
            self.app,
            threaded=True,
            request_handler=QuietHandler if quiet else None,
        )
        self._server.daemon_threads = True
        self.host = host
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    @property
    def auth_url(self) -> str:
        """WHOOPADMIN_WHOOP_AUTH_URL for this sandbox."""
        return f"{self.url}/oauth/oauth2/auth"

    @property
    def token_url(self) -> str:
        """WHOOPADMIN_WHOOP_TOKEN_URL for this sandbox."""
        return f"{self.url}/oauth/oauth2/token"

    @property
    def api_base(self) -> str:
        """WHOOPADMIN_WHOOP_API_BASE for this sandbox."""
        return f"{self.url}/developer"

    def env(self) -> dict[str, str]:
        """The environment variables that point whoopadmin at this sandbox."""
        return {
            "WHOOPADMIN_WHOOP_AUTH_URL": self.auth_url,
            "WHOOPADMIN_WHOOP_TOKEN_URL": self.token_url,
            "WHOOPADMIN_WHOOP_API_BASE": self.api_base,
        }

    def start(self) -> SandboxServer:
        """Start serving in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"whoop-sandbox-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the CLI)."""
        try:
            self._server.serve_forever()
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving, close the socket and stop webhook delivery."""
        self.state.close()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
