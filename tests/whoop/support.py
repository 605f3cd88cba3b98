"""Helpers for the WHOOP client tests: the sandbox world, token providers, a fake WHOOP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from whoopadmin.sandbox.server import QuietHandler, SandboxServer
from whoopadmin.whoop.client import WhoopClient

ALL_SCOPES = (
    "offline read:profile read:body_measurement read:cycles read:recovery read:sleep read:workout"
)


class Statuses(list):
    """A requests response hook that records every status code the session saw."""

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.append(response.status_code)


def statuses(session: requests.Session) -> Statuses:
    """The status codes the ``http`` session received so far."""
    return session.hooks["response"][0]


class World:
    """One sandbox app and the helpers to add members, tokens and clients to it."""

    def __init__(self, sb: SandboxServer, http: requests.Session) -> None:
        self.sb = sb
        self.http = http
        self.app = sb.state.create_app(
            redirect_uris=["http://127.0.0.1:9/cb"],
            rate_limit_per_minute=1_000_000,
            rate_limit_per_day=10_000_000,
        )
        self.clients: list[WhoopClient] = []

    def member(self, **fields: Any):
        """A new sandbox member (``days``, ``device`` …)."""
        return self.sb.state.create_member(**fields)

    def tokens(self, member, scope: str = ALL_SCOPES) -> dict:
        """A fresh token response for the member (consent and exchange in one step)."""
        return self.sb.state.grant_tokens(self.app.client_id, member.user_id, scope)

    def client(self, provider, **kwargs: Any) -> WhoopClient:
        """A WhoopClient on this sandbox with tiny retry delays (closed after the test)."""
        kwargs.setdefault("session", self.http)
        kwargs.setdefault("backoff", 0.001)
        kwargs.setdefault("timeout", 5)
        client = WhoopClient(self.sb.api_base, provider, **kwargs)
        self.clients.append(client)
        return client

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the sandbox control API (not through the client under test)."""
        resp = self.http.request(method, f"{self.sb.url}/_sandbox{path}", **kwargs)
        assert resp.status_code < 300, resp.text
        return resp.json() if resp.content else None

    def requests_counted(self) -> int:
        """How many API requests the sandbox counted against the app in this minute."""
        return self.app.minute_window[1]


class RefreshingProvider:
    """A token provider that refreshes for real at the sandbox's token endpoint and counts."""

    def __init__(self, world: World, token_response: dict) -> None:
        self.world = world
        self.access = token_response["access_token"]
        self.refresh = token_response["refresh_token"]
        self.refreshes = 0

    def token(self) -> str:
        """The current access token."""
        return self.access

    def refreshed(self, stale_token: str) -> str:
        """Refresh once (rotating the refresh token), as the real single-flight refresh does."""
        self.refreshes += 1
        if stale_token != self.access:  # someone else refreshed already
            return self.access
        resp = self.world.http.post(
            self.world.sb.token_url,
            data={
                "grant_type": "refresh_token",
                "refresh_token": self.refresh,
                "client_id": self.world.app.client_id,
                "client_secret": self.world.app.client_secret,
                "scope": "offline",
            },
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        self.access, self.refresh = body["access_token"], body["refresh_token"]
        return self.access


class FakeWhoop:
    """A misbehaving WHOOP on loopback: answers from a script the test supplies.

    Only for behaviour the faithful sandbox never shows (a repeated next_token, a body
    that is not JSON); everything else is tested against the sandbox.
    """

    def __init__(self, handler: Callable[[Request], tuple[int, Any, dict]]) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self._server = make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=QuietHandler
        )
        self.api_base = f"http://127.0.0.1:{self._server.server_port}/developer"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @Request.application
    def _wsgi(self, request: Request) -> Response:
        self.requests.append(request)
        status, body, headers = self.handler(request)
        data = body if isinstance(body, bytes | str) else json.dumps(body)
        return Response(data, status=status, headers=headers, mimetype="application/json")

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def place_sandbox_clock(world: World, second: float) -> None:
    """Move the sandbox clock forward so that it reads ``second`` seconds into a minute."""
    now = world.sb.state.clock.now()
    world.control("POST", "/clock", json={"advance_seconds": (second - now % 60) % 60})


def wait_for_fresh_window(redis_client: redis.Redis, seconds: float, margin: float) -> None:
    """Sleep past a window boundary (Redis clock) if one is less than ``margin`` away."""
    secs, micros = redis_client.time()
    now = secs + micros / 1e6
    left = seconds - now % seconds
    if left < margin:
        time.sleep(left + 0.01)


def pages(records: int, limit: int) -> int:
    """How many pages WHOOP needs for ``records`` records at ``limit`` a page (at least one)."""
    return max(1, -(-records // limit))
