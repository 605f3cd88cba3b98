"""OAuth at WHOOP's paths: consent, codes, tokens, refresh rotation and every error."""

from __future__ import annotations

import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.integrations.requests_client import OAuth2Session

ALL_SCOPES = (
    "offline read:profile read:body_measurement read:cycles read:recovery read:sleep read:workout"
)
REDIRECT = "http://127.0.0.1:9/auth/whoop/oauth2"  # the harness's registered redirect URI


def _query(resp) -> dict[str, str]:
    assert resp.status_code == 302, resp.text
    location = resp.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _exchange(whoop, app, code, redirect_uri=REDIRECT, **extra):
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
    }
    form.update(extra)
    return whoop.token_request(**{k: v for k, v in form.items() if v is not None})


def _refresh(whoop, app, refresh_token, scope="offline"):
    return whoop.token_request(
        grant_type="refresh_token",
        refresh_token=refresh_token,
        client_id=app["client_id"],
        client_secret=app["client_secret"],
        scope=scope,
    )


def _oauth_error(resp, status: int, error: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert body["error"] == error and body["error_description"]


def test_happy_path(whoop):
    app, member = whoop.new_app(), whoop.new_member(days=5)
    consent = whoop.consent(app, member, state="xyz-state-42")
    query = _query(consent)
    assert query["state"] == "xyz-state-42"
    assert set(query["scope"].split()) == set(ALL_SCOPES.split())
    resp = _exchange(whoop, app, query["code"])
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    token = resp.json()
    assert token["token_type"] == "bearer" and token["expires_in"] == 3600
    assert set(token["scope"].split()) == set(ALL_SCOPES.split())
    assert token["refresh_token"] and token["access_token"] != token["refresh_token"]
    profile = whoop.api(token["access_token"], "/v2/user/profile/basic").json()
    assert profile["user_id"] == member["user_id"]


@pytest.mark.parametrize("pkce", [None, "S256"])
def test_authlib_client_secret_post(whoop, pkce):
    """A stock OAuth client (authlib) completes the flow with client_secret_post (and PKCE)."""
    app, member = whoop.new_app(), whoop.new_member(days=5)
    verifier = "v" * 43 + "-authlib-pkce-verifier" if pkce else None
    with OAuth2Session(
        app["client_id"],
        app["client_secret"],
        scope="offline read:profile",
        redirect_uri=REDIRECT,
        token_endpoint_auth_method="client_secret_post",
        code_challenge_method=pkce,
    ) as client:
        client.trust_env = False
        url, state = client.create_authorization_url(
            whoop.sb.auth_url, state="authlib-state-1", code_verifier=verifier
        )
        assert ("code_challenge=" in url) == bool(pkce)
        page = whoop.http.get(url)
        assert page.status_code == 200
        form = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        form.update(email=member["email"], password=member["password"], action="approve")
        location = whoop.http.post(whoop.sb.auth_url, data=form, allow_redirects=False)
        token = client.fetch_token(
            whoop.sb.token_url,
            authorization_response=location.headers["Location"],
            state=state,
            code_verifier=verifier,
        )
        assert token["refresh_token"]
        resp = client.get(whoop.sb.api_base + "/v2/user/profile/basic")
        assert resp.status_code == 200 and resp.json()["email"] == member["email"]
        resp.close()
        new = client.refresh_token(whoop.sb.token_url, refresh_token=token["refresh_token"])
        assert new["refresh_token"] != token["refresh_token"]


def test_no_offline_no_refresh_token(whoop):
    app, member = whoop.new_app(), whoop.new_member(days=2)
    token = whoop.tokens(app, member, scope="read:profile")
    assert "refresh_token" not in token
    assert token["scope"] == "read:profile"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"state": "short"}, "invalid_state"),
        ({"state": ""}, "invalid_state"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "read:profile read:everything"}, "invalid_scope"),
    ],
)
def test_authorize_errors_redirect_with_state(whoop, change, error):
    app = whoop.new_app()
    params = {
        "response_type": "code",
        "client_id": app["client_id"],
        "redirect_uri": REDIRECT,
        "scope": "read:profile",
        "state": "state-0123456789",
        **change,
    }
    query = _query(whoop.http.get(whoop.sb.auth_url, params=params, allow_redirects=False))
    assert query["error"] == error and query["error_description"]
    assert "code" not in query
    if len(params["state"]) >= 8:
        assert query["state"] == params["state"]


@pytest.mark.parametrize(
    "redirect_uri",
    [REDIRECT + " ", " " + REDIRECT, REDIRECT + "/", REDIRECT.upper(), "http://evil.test/cb", None],
)
def test_redirect_uri_must_match_exactly(whoop, redirect_uri):
    app = whoop.new_app()
    params = {
        "response_type": "code",
        "client_id": app["client_id"],
        "scope": "read:profile",
        "state": "state-0123456789",
    }
    if redirect_uri is not None:
        params["redirect_uri"] = redirect_uri
    resp = whoop.http.get(whoop.sb.auth_url, params=params, allow_redirects=False)
    assert resp.status_code == 400 and "Location" not in resp.headers
    assert "invalid_request" in resp.text


def test_several_redirect_uris_each_work(whoop):
    other = "http://127.0.0.1:9/mobile/callback"
    app = whoop.new_app(redirect_uris=[REDIRECT, other])
    member = whoop.new_member(days=2)
    resp = whoop.consent(app, member, redirect_uri=other)
    assert resp.headers["Location"].startswith(other + "?code=")


def test_unknown_client_is_an_error_page(whoop):
    resp = whoop.http.get(
        whoop.sb.auth_url,
        params={"response_type": "code", "client_id": "nope", "redirect_uri": REDIRECT},
        allow_redirects=False,
    )
    assert resp.status_code == 400 and "invalid_client" in resp.text


def test_deny_and_wrong_password(whoop):
    app, member = whoop.new_app(), whoop.new_member(days=2)
    query = _query(whoop.consent(app, member, action="deny"))
    assert query["error"] == "access_denied" and query["state"] == "state-0123456789"
    wrong = whoop.consent(app, member, password="not-it")
    assert wrong.status_code == 401 and "Wrong e-mail or password" in wrong.text


def test_codes_are_single_use_and_short_lived(whoop):
    app, member = whoop.new_app(), whoop.new_member(days=2)
    code = whoop.code(app, member)
    first = _exchange(whoop, app, code)
    assert first.status_code == 200
    _oauth_error(_exchange(whoop, app, code), 400, "invalid_grant")
    # Replaying a code revokes what it issued (RFC 6749 4.1.2).
    assert whoop.api(first.json()["access_token"], "/v2/user/profile/basic").status_code == 401

    code = whoop.code(app, member)
    whoop.control("POST", "/clock", 200, json={"advance_seconds": 301})
    _oauth_error(_exchange(whoop, app, code), 400, "invalid_grant")


def test_token_endpoint_errors(whoop):
    app, member = whoop.new_app(), whoop.new_member(days=2)
    other = whoop.new_app()
    code = whoop.code(app, member)
    _oauth_error(_exchange(whoop, app, code, client_secret="wrong"), 401, "invalid_client")
    _oauth_error(_exchange(whoop, app, code, client_id="unknown"), 401, "invalid_client")
    _oauth_error(_exchange(whoop, app, code, client_secret=None), 401, "invalid_client")
    # HTTP Basic is not accepted (client_secret_post only).
    basic = whoop.http.post(
        whoop.sb.token_url,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=(app["client_id"], app["client_secret"]),
    )
    _oauth_error(basic, 401, "invalid_client")
    # JSON instead of a form.
    as_json = whoop.http.post(
        whoop.sb.token_url,
        json={"grant_type": "authorization_code", "code": code, "client_id": app["client_id"]},
    )
    _oauth_error(as_json, 400, "invalid_request")
    _oauth_error(_exchange(whoop, app, code, redirect_uri=REDIRECT + "/x"), 400, "invalid_request")
    _oauth_error(_exchange(whoop, app, code, redirect_uri=None), 400, "invalid_request")
    _oauth_error(_exchange(whoop, app, code, grant_type=None), 400, "invalid_request")
    _oauth_error(_exchange(whoop, app, code, grant_type="password"), 400, "unsupported_grant_type")
    _oauth_error(_exchange(whoop, app, "made-up-code"), 400, "invalid_grant")
    _oauth_error(_exchange(whoop, other, code), 400, "invalid_grant")
    _oauth_error(_exchange(whoop, app, ""), 400, "invalid_request")
    # None of the failures used the code up.
    assert _exchange(whoop, app, code).status_code == 200


def test_refresh_rotates_and_old_tokens_die(whoop):
    app, member = whoop.new_app(), whoop.new_member(days=2)
    first = whoop.tokens(app, member)
    resp = _refresh(whoop, app, first["refresh_token"])
    assert resp.status_code == 200, resp.text
    second = resp.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert set(second["scope"].split()) == set(ALL_SCOPES.split())
    # The old refresh token is refused, the old access token is dead, the new ones work.
    _oauth_error(_refresh(whoop, app, first["refresh_token"]), 400, "invalid_grant")
    assert whoop.api(first["access_token"], "/v2/user/profile/basic").status_code == 401
    assert whoop.api(second["access_token"], "/v2/user/profile/basic").status_code == 200
    third = _refresh(whoop, app, second["refresh_token"], scope=None)
    assert third.status_code == 200
    _oauth_error(
        _refresh(whoop, app, third.json()["refresh_token"], scope="read:everything offline"),
        400,
        "invalid_scope",
    )
    _oauth_error(_refresh(whoop, app, "sbx_rt_unknown"), 400, "invalid_grant")
    other = whoop.new_app()
    _oauth_error(_refresh(whoop, other, third.json()["refresh_token"]), 400, "invalid_grant")
    bad_secret = whoop.token_request(
        grant_type="refresh_token",
        refresh_token=third.json()["refresh_token"],
        client_id=app["client_id"],
        client_secret="nope",
    )
    _oauth_error(bad_secret, 401, "invalid_client")
    _oauth_error(
        whoop.token_request(
            grant_type="refresh_token",
            client_id=app["client_id"],
            client_secret=app["client_secret"],
        ),
        400,
        "invalid_request",
    )


def test_racing_refreshes_one_wins(whoop):
    app, member = whoop.new_app(), whoop.new_member(days=2)
    refresh_token = whoop.tokens(app, member)["refresh_token"]
    results: list[int] = []
    barrier = threading.Barrier(4)

    def go():
        import requests

        with requests.Session() as session:
            session.trust_env = False
            barrier.wait()
            resp = session.post(
                whoop.sb.token_url,
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": refresh_token,
                    "client_id": app["client_id"],
                    "client_secret": app["client_secret"],
                },
            )
            results.append(resp.status_code)
            resp.close()

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 400, 400, 400]


def test_access_tokens_expire_with_the_sandbox_clock(whoop):
    app, member = whoop.new_app(), whoop.new_member(days=2)
    whoop.control("PATCH", "/config", 200, json={"access_token_ttl": 120})
    token = whoop.tokens(app, member)
    assert token["expires_in"] == 120
    assert whoop.api(token["access_token"], "/v2/user/profile/basic").status_code == 200
    whoop.control("POST", "/clock", 200, json={"advance_seconds": 119})
    assert whoop.api(token["access_token"], "/v2/user/profile/basic").status_code == 200
    whoop.control("POST", "/clock", 200, json={"advance_seconds": 2})
    expired = whoop.api(token["access_token"], "/v2/user/profile/basic")
    assert expired.status_code == 401 and expired.json()["error"] == "invalid_token"
    assert "Bearer" in expired.headers["WWW-Authenticate"]
    # The refresh token still works after the access token expired.
    assert _refresh(whoop, app, token["refresh_token"]).status_code == 200


def test_refresh_token_lifetime_is_configurable(whoop):
    app, member = whoop.new_app(), whoop.new_member(days=2)
    whoop.control("PATCH", "/config", 200, json={"refresh_token_ttl": 1000})
    token = whoop.tokens(app, member)
    whoop.control("POST", "/clock", 200, json={"advance_seconds": 1001})
    _oauth_error(_refresh(whoop, app, token["refresh_token"]), 400, "invalid_grant")


def test_reuse_can_revoke_the_whole_family(whoop):
    app, member = whoop.new_app(), whoop.new_member(days=2)
    whoop.control("PATCH", "/config", 200, json={"refresh_reuse_revokes_family": True})
    first = whoop.tokens(app, member)
    second = _refresh(whoop, app, first["refresh_token"]).json()
    _oauth_error(_refresh(whoop, app, first["refresh_token"]), 400, "invalid_grant")
    assert whoop.api(second["access_token"], "/v2/user/profile/basic").status_code == 401
    _oauth_error(_refresh(whoop, app, second["refresh_token"]), 400, "invalid_grant")


def test_scopes_are_enforced(whoop):
    app, member = whoop.new_app(), whoop.new_member(days=5)
    token = whoop.tokens(app, member, scope="read:profile")["access_token"]
    assert whoop.api(token, "/v2/user/profile/basic").status_code == 200
    for path in (
        "/v2/user/measurement/body",
        "/v2/cycle",
        "/v2/recovery",
        "/v2/activity/sleep",
        "/v2/activity/workout",
    ):
        resp = whoop.api(token, path)
        assert resp.status_code == 401 and resp.json()["error"] == "insufficient_scope", path


def test_revoke_access(whoop):
    app, member = whoop.new_app(), whoop.new_member(days=2)
    token = whoop.tokens(app, member)
    assert whoop.api(token["access_token"], "/v2/user/access", method="DELETE").status_code == 204
    assert whoop.api(token["access_token"], "/v2/user/profile/basic").status_code == 401
    _oauth_error(_refresh(whoop, app, token["refresh_token"]), 400, "invalid_grant")
    assert whoop.control("GET", f"/apps/{app['client_id']}", 200)["member_count"] == 0


def test_unapproved_app_refuses_the_eleventh_member(whoop):
    app = whoop.new_app()
    members = [whoop.new_member(days=1) for _ in range(11)]
    for member in members[:10]:
        assert "code" in _query(whoop.consent(app, member))
    query = _query(whoop.consent(app, members[10]))
    assert query["error"] == "access_denied" and "10" in query["error_description"]
    assert query["state"] == "state-0123456789"
    # A member already linked can consent again; approval lifts the cap.
    assert "code" in _query(whoop.consent(app, members[0]))
    whoop.control("PATCH", f"/apps/{app['client_id']}", 200, json={"approved": True})
    assert "code" in _query(whoop.consent(app, members[10]))
    assert whoop.control("GET", f"/apps/{app['client_id']}", 200)["member_count"] == 11


def test_revoked_member_frees_a_slot(whoop):
    app = whoop.new_app()
    members = [whoop.new_member(days=1) for _ in range(11)]
    tokens = [whoop.tokens(app, m, scope="read:profile") for m in members[:10]]
    assert "error" in _query(whoop.consent(app, members[10]))
    whoop.api(tokens[0]["access_token"], "/v2/user/access", method="DELETE")
    assert "code" in _query(whoop.consent(app, members[10]))
