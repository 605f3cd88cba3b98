"""PKCE (RFC 7636, S256) at the sandbox: the challenge rides the consent page, and the token
endpoint checks the verifier."""

from __future__ import annotations

import re
import secrets
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from whoopadmin.sandbox.state import s256

REDIRECT = "http://127.0.0.1:9/auth/whoop/oauth2"
HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def _authorize(whoop, app, member, **pkce) -> requests.Response:
    """Open the consent page with ``pkce`` parameters and approve with its own hidden form."""
    params = {
        "response_type": "code",
        "client_id": app["client_id"],
        "redirect_uri": REDIRECT,
        "scope": "offline read:profile",
        "state": "state-0123456789",
        **pkce,
    }
    page = whoop.http.get(whoop.sb.auth_url, params=params, allow_redirects=False)
    if page.status_code != 200:
        return page
    form = {k: unescape(v) for k, v in HIDDEN_RE.findall(page.text)}
    form.update(email=member["email"], password=member["password"], action="approve")
    return whoop.http.post(whoop.sb.auth_url, data=form, allow_redirects=False)


def _query(resp) -> dict[str, str]:
    assert resp.status_code == 302, resp.text
    return {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["Location"]).query).items()}


def _exchange(whoop, app, code, verifier=None):
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
    }
    if verifier is not None:
        form["code_verifier"] = verifier
    return whoop.token_request(**form)


def _refused(resp, error="invalid_grant"):
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == error


@pytest.fixture
def verifier() -> str:
    return secrets.token_urlsafe(48)


def test_challenge_rides_the_consent_page_and_the_verifier_is_checked(whoop, verifier):
    app, member = whoop.new_app(), whoop.new_member(days=2)
    pkce = {"code_challenge": s256(verifier), "code_challenge_method": "S256"}
    code = _query(_authorize(whoop, app, member, **pkce))["code"]
    _refused(_exchange(whoop, app, code))  # no verifier
    _refused(_exchange(whoop, app, code, secrets.token_urlsafe(48)))  # another one
    _refused(_exchange(whoop, app, code, "short"))  # malformed
    token = _exchange(whoop, app, code, verifier)  # refusals did not use the code up
    assert token.status_code == 200, token.text
    assert whoop.api(token.json()["access_token"], "/v2/user/profile/basic").status_code == 200


def test_a_verifier_for_a_code_without_challenge_is_refused(whoop, verifier):
    app, member = whoop.new_app(), whoop.new_member(days=2)
    code = _query(_authorize(whoop, app, member))["code"]
    _refused(_exchange(whoop, app, code, verifier))
    assert _exchange(whoop, app, code).status_code == 200  # without PKCE, as before


@pytest.mark.parametrize(
    "pkce",
    [
        {"code_challenge": "x" * 43, "code_challenge_method": "plain"},
        {"code_challenge": "x" * 43},  # no method means plain (RFC 7636 4.3)
        {"code_challenge": "too-short", "code_challenge_method": "S256"},
        {"code_challenge": "x" * 129, "code_challenge_method": "S256"},
        {"code_challenge": "x" * 42 + "/", "code_challenge_method": "S256"},
        {"code_challenge_method": "S256"},  # a method without a challenge
    ],
)
def test_bad_challenges_go_back_as_invalid_request(whoop, pkce):
    app, member = whoop.new_app(), whoop.new_member(days=2)
    assert _query(_authorize(whoop, app, member, **pkce))["error"] == "invalid_request"


def test_control_authorize_takes_a_challenge(whoop, verifier):
    app, member = whoop.new_app(), whoop.new_member(days=2)
    issued = whoop.control(
        "POST",
        "/authorize",
        200,
        json={
            "client_id": app["client_id"],
            "user_id": member["user_id"],
            "code_challenge": s256(verifier),
        },
    )
    _refused(_exchange(whoop, app, issued["code"]))
    assert _exchange(whoop, app, issued["code"], verifier).status_code == 200
    bad = whoop.control(
        "POST",
        "/authorize",
        400,
        json={"client_id": app["client_id"], "user_id": member["user_id"], "code_challenge": "x"},
    )
    assert bad["error"] == "invalid_request"
