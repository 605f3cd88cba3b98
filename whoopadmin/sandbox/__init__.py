"""A faithful local fake of WHOOP: OAuth, API v2, rate limits, signed webhooks, Partner API.

``create_sandbox_app()`` builds a separate Flask app; ``SandboxServer`` (in ``server``)
runs it on loopback in a background thread; ``whoopadmin sandbox`` serves it from the
command line. It imports nothing from the rest of whoopadmin.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from . import api, control, oauth, partner
from .state import SandboxConfig, SandboxError, SandboxState
from .web import json_response

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["SandboxConfig", "SandboxError", "SandboxState", "create_sandbox_app"]


def create_sandbox_app(state: SandboxState | None = None, **settings: Any) -> Flask:
    """Build the sandbox Flask app around ``state`` (a fresh one from ``settings`` if None)."""
    sandbox = state or SandboxState(**settings)
    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=None)
    app.extensions["whoop_sandbox"] = sandbox
    app.register_blueprint(oauth.bp)
    app.register_blueprint(partner.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(control.bp)

    @app.before_request
    def start_timer_and_faults() -> Response | None:
        """Time every request; inject the configured faults into API (and OAuth) calls."""
        g.started = time.perf_counter()
        path = request.path
        is_api = path.startswith("/developer/")
        is_oauth = path.startswith("/oauth/")
        if not (is_api or is_oauth):
            return None
        fault = sandbox.pick_fault(oauth=is_oauth)
        if fault == "error":
            return json_response(
                {"error": "server_error", "error_description": "Injected fault: server error"},
                500,
            )
        if fault == "timeout":
            # Hold the request long enough for the client to give up.
            sandbox.stop_event.wait(sandbox.faults.timeout_seconds)
            return json_response(
                {"error": "timeout", "error_description": "Injected fault: gateway timeout"}, 504
            )
        if fault == "rate_limit":
            headers = {
                "X-RateLimit-Limit": "100, 100;window=60, 10000;window=86400",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": "60",
                "Retry-After": "60",
            }
            return json_response(
                {"error": "rate_limited", "error_description": "Injected fault: rate limited"},
                429,
                headers,
            )
        if fault == "slow":
            sandbox.stop_event.wait(sandbox.faults.slow_seconds)
        return None

    @app.after_request
    def server_timing(response: Response) -> Response:
        """Report ``Server-Timing: app;dur=<ms>`` so benchmarks can tell our time from theirs."""
        started = g.get("started")
        if started is not None:
            elapsed = (time.perf_counter() - started) * 1000
            response.headers["Server-Timing"] = f"app;dur={elapsed:.3f}"
        return response

    @app.errorhandler(SandboxError)
    def sandbox_error(exc: SandboxError) -> Response:
        """Typed errors become OAuth-style JSON."""
        return json_response({"error": exc.error, "error_description": exc.description}, exc.status)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        """404, 405 and friends as JSON too."""
        name = (exc.name or "error").lower().replace(" ", "_")
        return json_response(
            {"error": name, "error_description": exc.description or ""}, exc.code or 500
        )

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:  # pragma: no cover - a bug, not a path
        """A bug: log the traceback (never request data) and answer JSON."""
        app.logger.exception("sandbox error")
        return json_response(
            {"error": "server_error", "error_description": "Unexpected sandbox error"}, 500
        )

    return app
