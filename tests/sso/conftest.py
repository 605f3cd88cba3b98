"""A real OpenID provider (the npm package oidc-provider) on loopback, and an app that uses it.

``tests/sso/provider`` holds its package.json and package-lock.json; the first run installs
it with ``npm ci`` (the npm registry, once), later runs reuse node_modules.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.helpers import reset_schema

PROVIDER = Path(__file__).resolve().parent / "provider"
ADMIN = "http://localhost"  # the test client's own host, so AuthActions shares its cookies
CLIENT_ID = "whoopadmin-test"
CLIENT_SECRET = "test-client-secret-0123456789abcdef"
# Test accounts at the provider: who they are, and whether it has verified their e-mail.
ACCOUNTS = {
    "operator": {"email": "operator@example.com", "email_verified": True},
    "unverified": {"email": "operator@example.com", "email_verified": False},
    "newcomer": {"email": "new.person@acme-health.com", "email_verified": True},
    "stranger": {"email": "someone@elsewhere.org", "email_verified": True},
    "shouty": {"email": "OPERATOR@EXAMPLE.COM", "email_verified": True},
    "stringy": {"email": "operator@example.com", "email_verified": "true"},
    "support": {"email": "support@example.com", "email_verified": True},
}


def _install() -> None:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        message = "Node.js and npm are not installed (they run the test OpenID provider)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    if (PROVIDER / "node_modules" / "oidc-provider").is_dir():
        return
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=PROVIDER, check=True, timeout=300)


@pytest.fixture(scope="session")
def oidc_provider():
    """The provider's issuer URL, for the whole run."""
    _install()
    env = dict(
        os.environ,
        OIDC_TEST_CLIENT=json.dumps(
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [f"{ADMIN}/login/sso/callback"],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "client_secret_basic",
            }
        ),
        OIDC_TEST_ACCOUNTS=json.dumps(ACCOUNTS),
    )
    process = subprocess.Popen(
        ["node", "provider.mjs"],
        cwd=PROVIDER,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline()
        if not line:
            pytest.fail("the test OpenID provider did not start", pytrace=False)
        yield json.loads(line)["issuer"]
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        process.stdout.close()


@pytest.fixture
def sso_config(oidc_provider):
    return {
        "OIDC_ISSUER": oidc_provider,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_PROVIDER_NAME": "Acme ID",
        "OIDC_ALLOWED_DOMAINS": "acme-health.com, @Other.ORG.",
    }


@pytest.fixture
def make_sso_app(make_app, wizard_config, sso_config):
    def factory(**overrides):
        app = make_app(**{**wizard_config, **sso_config, **overrides})
        reset_schema(app)
        return app

    return factory


@pytest.fixture
def sso_app(make_sso_app):
    return make_sso_app()


class Browser:
    """A person's browser: the Flask test client for whoopadmin, requests for the provider."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()
        self.idp = requests.Session()

    def close(self) -> None:
        self.idp.close()

    def start(self, next_path: str | None = None) -> str:
        """Press "Sign in with …"; return the provider's authorization URL."""
        path = "/login/sso" + (f"?next={next_path}" if next_path else "")
        response = self.client.get(path, base_url=ADMIN)
        assert response.status_code == 302, response.data
        return response.headers["Location"]

    def sign_in_at_provider(self, authorize_url: str, account: str, amr: str = "pwd") -> str:
        """Sign in at the provider as ``account``; return where it sends the browser back."""
        page = self.idp.get(authorize_url, timeout=10)
        assert page.status_code == 200 and "/interaction/" in page.url, page.text
        answer = self.idp.post(
            page.url, data={"account": account, "amr": amr}, allow_redirects=False, timeout=10
        )
        location = answer.headers["Location"]
        while not location.startswith(ADMIN):  # the provider's own redirects (resume)
            answer = self.idp.get(location, allow_redirects=False, timeout=10)
            location = answer.headers["Location"]
        return location

    def back(self, location: str):
        """Follow the provider's redirect back to whoopadmin's callback."""
        parts = urlsplit(location)
        return self.client.get(f"{parts.path}?{parts.query}", base_url=ADMIN)

    def sso(self, account: str, amr: str = "pwd", next_path: str | None = None):
        return self.back(self.sign_in_at_provider(self.start(next_path), account, amr))

    def get(self, path: str):
        return self.client.get(path, base_url=ADMIN)


@pytest.fixture
def browser(sso_app):
    made = Browser(sso_app)
    yield made
    made.close()
