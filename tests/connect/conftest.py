"""Fixtures for the connect flow: an end user's browser between whoopadmin and the sandbox."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.helpers import csrf_from
from whoopadmin.connect import service
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection

PUBLIC = "https://whoop.acme.test"
HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


class EndUser:
    """An end user: opens the connect link, consents at the sandbox, lands on the callback."""

    def __init__(self, app, sandbox, member):
        self.app, self.sandbox, self.member = app, sandbox, member
        self.client = app.test_client()

    def open(self, token: str):
        return self.client.get(f"/connect/{token}", base_url=PUBLIC)

    def start(self, token: str):
        page = self.open(token)
        assert page.status_code == 200, page.status_code
        response = self.client.post(
            f"/connect/{token}/start",
            data={"csrf_token": csrf_from(page.get_data(as_text=True))},
            base_url=PUBLIC,
            # Over https Flask-WTF also checks the Referer, as a browser would send it.
            headers={"Referer": f"{PUBLIC}/connect/{token}"},
        )
        assert response.status_code == 303, response.status_code
        return response.headers["Location"]

    def consent(self, authorize_url: str, action: str = "approve") -> str:
        """Sign in at the sandbox and answer; return where WHOOP redirects back to."""
        with requests.Session() as http:
            page = http.get(authorize_url, timeout=10)
            assert page.status_code == 200, page.text
            form = dict(HIDDEN_RE.findall(page.text))
            form = {k: unescape(v) for k, v in form.items()}
            form.update(email=self.member.email, password=self.member.password, action=action)
            answer = http.post(
                urlsplit(authorize_url)._replace(query="").geturl(),
                data=form,
                allow_redirects=False,
                timeout=10,
            )
        assert answer.status_code == 302, answer.text
        return answer.headers["Location"]

    def callback(self, location: str):
        parts = urlsplit(location)
        assert f"{parts.scheme}://{parts.netloc}" == PUBLIC, location
        return self.client.get(f"{parts.path}?{parts.query}", base_url=PUBLIC)

    def connect(self, token: str, action: str = "approve"):
        return self.callback(self.consent(self.start(token), action))


def query(location: str) -> dict[str, str]:
    """The query parameters of a redirect."""
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@pytest.fixture
def connection_id(configured_app):
    with configured_app.app_context():
        connection = db.session.scalar(db.select(Connection))
        connection.allowed_origins = ["https://app.acme.test"]
        connection.app_schemes = ["acmehealth"]
        db.session.commit()
        return connection.id


@pytest.fixture
def new_session(configured_app, connection_id):
    """Create a connect session: ``new_session(**fields)`` returns its token."""

    def create(**fields):
        values = {
            "reference_id": "user-42",
            "success_redirect_url": "https://app.acme.test/whoop/done?x=1",
            "failure_redirect_url": "https://app.acme.test/whoop/failed",
            "created_by": "test",
        }
        values.update(fields)
        with configured_app.app_context():
            connection = db.session.get(Connection, connection_id)
            _, token = service.create_session(connection, **values)
        return token

    return create


@pytest.fixture
def member(sandbox):
    return sandbox.state.create_member(days=10)


@pytest.fixture
def end_user(configured_app, sandbox, member):
    return EndUser(configured_app, sandbox, member)
