"""Small helpers the sandbox's views share: JSON responses and the current state."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, current_app, request

from .state import SandboxError, SandboxState


def state() -> SandboxState:
    """The SandboxState bound to the running sandbox app."""
    return current_app.extensions["whoop_sandbox"]


def json_response(body: Any, status: int = 200, headers: dict | None = None) -> Response:
    """Serialise compactly (fast) and return a JSON response."""
    return Response(
        json.dumps(body, separators=(",", ":")),
        status=status,
        mimetype="application/json",
        headers=headers,
    )


def error_response(exc: SandboxError, headers: dict | None = None) -> Response:
    """OAuth-style error JSON: ``{"error": ..., "error_description": ...}``."""
    return json_response(
        {"error": exc.error, "error_description": exc.description}, exc.status, headers
    )


def json_body() -> dict:
    """The request body as a JSON object, or a 400."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise SandboxError(400, "invalid_request", "the body must be a JSON object")
    return body
