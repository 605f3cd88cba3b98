"""The Partner API token manager against the sandbox: JSON grant, cache, one retry on 401."""

import pytest

from whoopadmin.sandbox.state import token_key
from whoopadmin.whoop.api import WhoopError
from whoopadmin.whoop.partner import PartnerTokens


@pytest.fixture
def partner(sandbox):
    return sandbox.state.create_partner()


@pytest.fixture
def tokens(sandbox, partner):
    manager = PartnerTokens(sandbox.api_base, partner.client_id, partner.client_secret)
    yield manager
    manager.close()


def test_token_is_fetched_once_and_cached(tokens):
    first = tokens.token()
    assert first and tokens.token() == first
    assert tokens.tokens_fetched == 1


def test_call_with_token(tokens):
    response = tokens.request("POST", "/v2/partner/development/add-test-data")
    assert response.status_code == 204, response.text
    response.close()


def test_401_gets_a_new_token_and_retries_once(tokens, sandbox):
    stale = tokens.token()
    with sandbox.state.lock:
        # WHOOP forgot it (expired early); the sandbox keeps tokens by their hash.
        sandbox.state.partner_tokens.pop(token_key(stale))
    response = tokens.request("POST", "/v2/partner/development/add-test-data")
    assert response.status_code == 204
    response.close()
    assert tokens.tokens_fetched == 2 and tokens.token() != stale


def test_expiry_margin_renews_early(sandbox, partner):
    now = [0.0]
    manager = PartnerTokens(
        sandbox.api_base, partner.client_id, partner.client_secret, clock=lambda: now[0]
    )
    try:
        first = manager.token()
        now[0] = 3600 - 30  # inside the 60 s margin before expiry
        assert manager.token() != first
        assert manager.tokens_fetched == 2
    finally:
        manager.close()


def test_bad_credentials(sandbox, partner):
    manager = PartnerTokens(sandbox.api_base, partner.client_id, "wrong-secret")
    try:
        with pytest.raises(WhoopError) as info:
            manager.token()
        assert info.value.code == "invalid_client"
        assert "wrong-secret" not in str(info.value)
    finally:
        manager.close()


def test_unreachable():
    manager = PartnerTokens("http://127.0.0.1:1/developer", "id", "secret", timeout=1)
    try:
        with pytest.raises(WhoopError) as info:
            manager.token()
        assert info.value.code == "network"
    finally:
        manager.close()
