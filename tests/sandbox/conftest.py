"""Fixtures for the WHOOP sandbox tests: a real server on loopback and plain HTTP clients."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from whoopadmin.sandbox.server import QuietHandler, SandboxServer

# WHOOP's published OpenAPI document (a copy of reference/whoop-openapi.yml, kept beside
# the tests so CI has it).
SPEC_PATH = Path(__file__).resolve().parent / "whoop-openapi.yml"
ALL_SCOPES = (
    "offline read:profile read:body_measurement read:cycles read:recovery read:sleep read:workout"
)
REDIRECT = "http://127.0.0.1:9/auth/whoop/oauth2"


def _spec_dict() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text())


def _strict(node):
    """Forbid properties the document does not name, so extra fields fail too."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node and "oneOf" not in node:
            node.setdefault("additionalProperties", False)
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        for value in node:
            _strict(value)
    return node


@pytest.fixture(scope="session")
def openapi() -> OpenAPI:
    """WHOOP's own OpenAPI document, the schema of record."""
    return OpenAPI.from_dict(_spec_dict())


@pytest.fixture(scope="session")
def strict_openapi() -> OpenAPI:
    """WHOOP's document with additionalProperties: false on every plain object schema."""
    return OpenAPI.from_dict(_strict(_spec_dict()))


class _AsWhoop(RequestsOpenAPIRequest):
    """A request as if it had gone to api.prod.whoop.com (the spec's only server)."""

    @property
    def host_url(self) -> str:
        return "https://api.prod.whoop.com"


@pytest.fixture
def validate(openapi: OpenAPI, strict_openapi: OpenAPI):
    """Validate a response against WHOOP's OpenAPI document, as published and strictly."""

    def check(resp: requests.Response) -> requests.Response:
        for spec in (openapi, strict_openapi):
            spec.validate_response(_AsWhoop(resp.request), RequestsOpenAPIResponse(resp))
        return resp

    return check


@pytest.fixture
def http():
    """A requests session that ignores proxy settings (loopback only) and is closed after."""
    session = requests.Session()
    session.trust_env = False
    yield session
    session.close()


@pytest.fixture
def sandbox():
    """A fresh sandbox on 127.0.0.1, any free port, with fast webhook retries."""
    with SandboxServer(
        seed=7, webhook_retry_delays=(0.05, 0.05, 0.05, 0.05, 0.05), webhook_timeout=2.0
    ) as server:
        yield server


class Harness:
    """Drives the sandbox over HTTP the way a WHOOP integration would."""

    def __init__(self, sandbox: SandboxServer, http: requests.Session) -> None:
        self.sb = sandbox
        self.http = http

    def control(self, method: str, path: str, expect: int | None = None, **kwargs):
        """Call the control API; returns the parsed JSON (or None for 204)."""
        resp = self.http.request(method, f"{self.sb.url}/_sandbox{path}", **kwargs)
        if expect is not None:
            assert resp.status_code == expect, resp.text
        return resp.json() if resp.content else None

    def new_app(self, **fields) -> dict:
        """Register an app through the control API (high rate limits unless given)."""
        fields.setdefault("redirect_uris", [REDIRECT])
        fields.setdefault("rate_limit_per_minute", 1_000_000)
        fields.setdefault("rate_limit_per_day", 10_000_000)
        return self.control("POST", "/apps", 201, json=fields)

    def new_member(self, **fields) -> dict:
        """Add a member through the control API."""
        return self.control("POST", "/members", 201, json=fields)

    def consent(
        self,
        app: dict,
        member: dict,
        scope: str = ALL_SCOPES,
        state: str = "state-0123456789",
        redirect_uri: str = REDIRECT,
        action: str = "approve",
        password: str | None = None,
    ) -> requests.Response:
        """Open the consent page, then sign in and answer; returns the POST response."""
        params = {
            "response_type": "code",
            "client_id": app["client_id"],
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": state,
        }
        page = self.http.get(self.sb.auth_url, params=params, allow_redirects=False)
        assert page.status_code == 200, page.text
        assert "Approve" in page.text and "Deny" in page.text
        form = dict(params, email=member["email"], action=action)
        form["password"] = member["password"] if password is None else password
        return self.http.post(self.sb.auth_url, data=form, allow_redirects=False)

    def code(self, app: dict, member: dict, **kwargs) -> str:
        """A fresh authorization code through the real consent page."""
        resp = self.consent(app, member, **kwargs)
        assert resp.status_code == 302, resp.text
        query = parse_qs(urlsplit(resp.headers["Location"]).query)
        assert "code" in query, resp.headers["Location"]
        return query["code"][0]

    def token_request(self, **form) -> requests.Response:
        """POST the token endpoint with a form body."""
        return self.http.post(self.sb.token_url, data=form)

    def tokens(self, app: dict, member: dict, scope: str = ALL_SCOPES) -> dict:
        """Consent and exchange the code: the token response."""
        code = self.code(app, member, scope=scope)
        resp = self.token_request(
            grant_type="authorization_code",
            code=code,
            redirect_uri=REDIRECT,
            client_id=app["client_id"],
            client_secret=app["client_secret"],
        )
        assert resp.status_code == 200, resp.text
        return resp.json()

    def api(self, token: str, path: str, method: str = "GET", **params) -> requests.Response:
        """Call API v2 with a bearer token."""
        return self.http.request(
            method,
            f"{self.sb.api_base}{path}",
            params=params or None,
            headers={"Authorization": f"Bearer {token}"},
        )

    def all_pages(self, token: str, path: str, **params) -> list[dict]:
        """Follow nextToken to the end; returns every record in order."""
        records: list[dict] = []
        next_token = None
        for _ in range(10_000):
            query = dict(params)
            if next_token:
                query["nextToken"] = next_token
            resp = self.api(token, path, **query)
            assert resp.status_code == 200, resp.text
            body = resp.json()
            records.extend(body["records"])
            next_token = body.get("next_token")
            if not next_token:
                return records
        raise AssertionError("paging never ended")


@pytest.fixture
def whoop(sandbox: SandboxServer, http: requests.Session) -> Harness:
    """The harness bound to a fresh sandbox."""
    return Harness(sandbox, http)


class Receiver:
    """A real HTTP server on loopback that records what it receives."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.received: list[dict] = []
        self.statuses = list(statuses or [])
        self._lock = threading.Lock()
        self._server = make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=QuietHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}/hooks"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @Request.application
    def _wsgi(self, request: Request) -> Response:
        with self._lock:
            self.received.append(
                {"path": request.path, "headers": dict(request.headers), "body": request.get_data()}
            )
            status = self.statuses.pop(0) if self.statuses else 204
        return Response(status=status)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict]:
        """Wait until ``count`` requests arrived; returns them all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.01)
        with self._lock:
            return list(self.received)

    def events(self) -> list[dict]:
        """Received bodies parsed as JSON."""
        with self._lock:
            return [json.loads(r["body"]) for r in self.received]

    def close(self) -> None:
        """Stop the server."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def receiver():
    """A webhook receiver that answers 204."""
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def make_receiver():
    """Build receivers that answer with the given statuses first (closed after the test)."""
    made: list[Receiver] = []

    def make(statuses: list[int] | None = None) -> Receiver:
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for server in made:
        server.close()
