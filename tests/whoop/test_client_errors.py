"""WhoopClient errors, retries and the lazy refresh, against the real sandbox over HTTP."""

from __future__ import annotations

import logging
import socket

import pytest

from tests.whoop.support import RefreshingProvider, pages, statuses
from whoopadmin.whoop.api import WhoopError
from whoopadmin.whoop.client import WhoopClient


class CountingProvider:
    """A provider whose tokens WHOOP never accepts; counts how often it is asked to refresh."""

    def __init__(self) -> None:
        self.refreshes = 0

    def token(self) -> str:
        return "sbx_at_not-a-real-token"

    def refreshed(self, stale_token: str) -> str:
        self.refreshes += 1
        return "sbx_at_still-not-a-real-token"


def test_an_expired_token_is_refreshed_exactly_once_and_the_call_retried(world, http):
    member = world.member(days=20)
    provider = RefreshingProvider(world, world.tokens(member))
    client = world.client(provider)
    cycle = world.sb.state.data(member.user_id).cycles.records[3]
    assert client.cycle(cycle["id"]) == cycle
    world.control("POST", "/clock", json={"advance_seconds": 3601})  # the token expires
    assert client.cycle(cycle["id"]) == cycle
    assert provider.refreshes == 1
    assert statuses(http)[-3:] == [401, 200, 200]  # 401, refresh (token endpoint), retry
    # Later calls use the fresh token: no more 401s, no more refreshes.
    # As many cycles as the member has (21 or 22: it depends on the time of day).
    expected = len(world.sb.state.data(member.user_id).cycles.records)
    assert len(list(client.iter_collection("cycle", limit=25))) == expected
    assert provider.refreshes == 1 and 401 not in statuses(http)[-2:]


def test_a_second_401_after_the_refresh_is_unauthorized(world, http):
    provider = CountingProvider()
    client = world.client(provider)
    with pytest.raises(WhoopError) as info:
        client.profile()
    assert (info.value.code, info.value.status) == ("unauthorized", 401)
    assert provider.refreshes == 1 and statuses(http) == [401, 401]


def test_a_token_that_cannot_be_refreshed_is_unauthorized_after_one_request(world, http):
    client = world.client("sbx_at_nope")
    with pytest.raises(WhoopError) as info:
        client.body_measurement()
    assert info.value.code == "unauthorized" and statuses(http) == [401]


def test_a_missing_scope_is_not_cured_by_a_refresh(world, http):
    member = world.member(days=3)
    provider = RefreshingProvider(world, world.tokens(member, scope="offline read:profile"))
    client = world.client(provider)
    assert client.profile()["user_id"] == member.user_id
    with pytest.raises(WhoopError) as info:
        client.cycle(1)
    assert info.value.code == "insufficient_scope" and provider.refreshes == 0


@pytest.mark.parametrize(
    "body, headers",
    [
        ({}, {"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="read:sleep"'}),
        ({"error": "insufficient_scope"}, {}),
    ],
)
def test_a_403_insufficient_scope_is_insufficient_scope(fake_whoop, body, headers):
    """RFC 6750 3.1 answers a missing scope with 403 (the sandbox, like WHOOP, with 401)."""
    server = fake_whoop(lambda request: (403, body, headers))
    client = WhoopClient(server.api_base, CountingProvider(), max_retries=0)
    with pytest.raises(WhoopError) as info:
        client.sleep("3f1c8a1e-0000-4000-8000-000000000001")
    assert (info.value.code, info.value.status) == ("insufficient_scope", 403)
    assert len(server.requests) == 1 and client.tokens.refreshes == 0
    plain = fake_whoop(lambda request: (403, {"error": "forbidden"}, {}))
    with pytest.raises(WhoopError) as other:
        WhoopClient(plain.api_base, CountingProvider(), max_retries=0).profile()
    assert other.value.code == "http_error"


def test_server_errors_are_retried_until_the_data_is_complete(world, http):
    member = world.member(days=365)
    client = world.client(world.tokens(member)["access_token"], max_retries=8)
    world.sb.state.set_faults({"error_rate": 0.3})
    got = list(client.iter_collection("cycle"))
    assert got == world.sb.state.data(member.user_id).cycles.records
    codes = statuses(http)
    assert codes.count(500) >= 2 and codes.count(200) == pages(len(got), 25)


def test_timeouts_are_retried_until_the_data_is_complete(world, http):
    member = world.member(days=60)
    client = world.client(world.tokens(member)["access_token"], timeout=0.25, max_retries=6)
    world.sb.state.set_faults({"timeout_rate": 0.3, "timeout_seconds": 1.5})
    got = list(client.iter_collection("activity/sleep"))
    assert got == world.sb.state.data(member.user_id).sleeps.records
    needed = pages(len(got), 25)
    assert client.requests_sent > needed == statuses(http).count(200)


def test_retries_are_bounded_and_counted(world, http):
    member = world.member(days=5)
    client = world.client(world.tokens(member)["access_token"], max_retries=3)
    world.sb.state.set_faults({"error_rate": 1.0, "remaining": 2})
    assert client.profile()["user_id"] == member.user_id
    assert statuses(http) == [500, 500, 200]
    statuses(http).clear()
    world.sb.state.set_faults({"error_rate": 1.0})
    with pytest.raises(WhoopError) as info:
        client.profile()
    assert (info.value.code, info.value.status) == ("server_error", 500)
    assert statuses(http) == [500] * 4  # one try and three retries, no more


def test_client_errors_are_never_retried(world, http):
    member = world.member(days=5)
    client = world.client(world.tokens(member)["access_token"])
    with pytest.raises(WhoopError) as info:
        list(client.iter_collection("cycle", start="yesterday"))
    assert (info.value.code, info.value.status) == ("bad_request", 400)
    assert statuses(http) == [400] and world.requests_counted() == 1


def test_no_answer_is_a_network_error_after_the_retries(http):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = WhoopClient(
        f"http://127.0.0.1:{port}/developer", "tok", session=http, max_retries=2, backoff=0.001
    )
    with pytest.raises(WhoopError) as info:
        client.profile()
    assert info.value.code == "network" and client.requests_sent == 3


def test_an_answer_that_is_not_json_is_a_bad_response(fake_whoop, http):
    server = fake_whoop(lambda request: (200, b"<html>maintenance</html>", {}))
    client = WhoopClient(server.api_base, "tok", session=http, backoff=0.001)
    with pytest.raises(WhoopError) as info:
        client.cycle(5)
    assert info.value.code == "bad_response" and len(server.requests) == 1


def test_tokens_never_appear_in_errors_or_logs(world, http, caplog, fake_whoop):
    caplog.set_level(logging.DEBUG)
    member = world.member(days=5)
    secret = world.tokens(member)["access_token"]
    errors = []
    client = world.client(secret, max_retries=1)
    for faults, call in (
        ({"error_rate": 1.0}, client.profile),
        ({"timeout_rate": 1.0, "timeout_seconds": 0.5}, client.profile),
        ({}, lambda: client.cycle(12345)),
        ({}, lambda: list(client.iter_collection("cycle", start="bad"))),
    ):
        world.sb.state.set_faults(faults)
        client.timeout = 0.2
        with pytest.raises(WhoopError) as info:
            call()
        errors.append(info.value)
    world.sb.state.set_faults({})
    with pytest.raises(WhoopError) as info:
        world.client(secret + "x").profile()  # 401
    errors.append(info.value)
    texts = [f"{e} {e!r} {e.args} {e.__cause__!r} {e.__context__!r}" for e in errors]
    assert [e.code for e in errors] == [
        "server_error",
        "network",
        "not_found",
        "bad_request",
        "unauthorized",
    ]
    assert all(secret not in text for text in texts)
    assert secret not in caplog.text
    assert "retry" in caplog.text  # the retries were logged, without the token
