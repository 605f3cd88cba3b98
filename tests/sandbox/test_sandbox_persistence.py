"""The demo's sandbox keeps its state in a file: a restart forgets no grant, token or webhook."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from tests.sandbox.conftest import ALL_SCOPES, REDIRECT, Harness
from whoopadmin.sandbox.data import iso_ms
from whoopadmin.sandbox.persist import Autosaver, StateFile
from whoopadmin.sandbox.server import SandboxServer
from whoopadmin.sandbox.state import SandboxState

SETTINGS = {"seed": 7, "webhook_retry_delays": (2.0, 2.0, 2.0), "webhook_timeout": 2.0}


def _ago(hours: float) -> str:
    return iso_ms(int((time.time() - hours * 3600) * 1000))


def _start(path) -> tuple[SandboxServer, Autosaver, str | None]:
    state, message = StateFile(path).load(**SETTINGS)
    server = SandboxServer(state).start()
    return server, Autosaver(state, StateFile(path), interval=0.2).start(), message


def _stop(server: SandboxServer, autosaver: Autosaver) -> None:
    server.stop()  # the dispatcher stops first, so the last save holds pending webhooks
    autosaver.stop()


def test_a_restarted_sandbox_keeps_grants_tokens_data_and_pending_webhooks(
    tmp_path, http, make_receiver
):
    path = tmp_path / "sandbox-state.json"
    receiver = make_receiver([500])  # the first delivery fails: a retry is pending
    first, autosaver, message = _start(path)
    assert message is None
    try:
        whoop = Harness(first, http)
        app = whoop.new_app(webhook_urls=[receiver.url])
        member = whoop.new_member(days=10)
        tokens = whoop.tokens(app, member)
        before = whoop.all_pages(tokens["access_token"], "/v2/activity/sleep")
        workout = whoop.control(
            "POST",
            f"/members/{member['user_id']}/workouts",
            201,
            json={"start": _ago(2), "end": _ago(1)},
        )
        assert len(receiver.wait_for(1)) == 1  # tried once, answered 500, retry in 2 s
    finally:
        _stop(first, autosaver)

    saved = path.read_text()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    for token in (tokens["access_token"], tokens["refresh_token"]):
        assert token not in saved  # only hashes of tokens are kept

    second, autosaver, message = _start(path)
    try:
        assert message is None
        whoop = Harness(second, http)
        # The webhook that was pending arrives after the restart (its retry).
        events = [json.loads(r["body"]) for r in receiver.wait_for(2, timeout=15)]
        assert len(events) == 2 and events[1]["id"] == workout["id"], events
        # The old access token still reads the same data, the new workout included.
        access = tokens["access_token"]
        assert whoop.all_pages(access, "/v2/activity/sleep") == before
        found = whoop.api(access, f"/v2/activity/workout/{workout['id']}")
        assert found.status_code == 200 and found.json() == workout
        # The refresh token works once, and the grant still sends webhooks.
        refreshed = whoop.token_request(
            grant_type="refresh_token",
            refresh_token=tokens["refresh_token"],
            client_id=app["client_id"],
            client_secret=app["client_secret"],
            scope=ALL_SCOPES,
        )
        assert refreshed.status_code == 200, refreshed.text
        again = whoop.token_request(
            grant_type="refresh_token",
            refresh_token=tokens["refresh_token"],
            client_id=app["client_id"],
            client_secret=app["client_secret"],
        )
        assert again.json()["error"] == "invalid_grant"  # single use survives the restart
        assert whoop.api(access, "/v2/user/profile/basic").status_code == 401  # rotated away
        whoop.control(
            "POST",
            f"/members/{member['user_id']}/workouts",
            201,
            json={"start": _ago(4), "end": _ago(3)},
        )
        assert len(receiver.wait_for(3, timeout=10)) == 3
        # Ids keep counting: a new member does not reuse the first one's id.
        assert whoop.new_member()["user_id"] != member["user_id"]
        assert whoop.control("GET", f"/apps/{app['client_id']}", 200)["member_ids"] == [
            member["user_id"]
        ]
    finally:
        _stop(second, autosaver)


def test_codes_survive_a_restart_and_stay_single_use(tmp_path, http):
    path = tmp_path / "state.json"
    first, autosaver, _ = _start(path)
    try:
        whoop = Harness(first, http)
        app = whoop.new_app()
        code = whoop.code(app, whoop.new_member(days=1))
    finally:
        _stop(first, autosaver)
    assert code not in path.read_text()
    second, autosaver, _ = _start(path)
    try:
        whoop = Harness(second, http)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
        }
        assert whoop.token_request(**form).status_code == 200
        assert whoop.token_request(**form).json()["error"] == "invalid_grant"
    finally:
        _stop(second, autosaver)


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe\x00garbage",
        b"[]",
        b'{"version": 99}',
        b'{"version": 1}',
        b'{"version": 1, "seed": 1, "settings": {"access_token_ttl": -5}}',
        b'{"version": 1, "seed": 1, "settings": {}, "clock_offset_ms": 0, "app_count": 0,'
        b' "member_count": 0, "apps": [{"client_id": 5}], "members": "x"}',
    ],
    ids=["json", "bytes", "list", "version", "empty", "bad-setting", "bad-types"],
)
def test_an_unusable_state_file_is_moved_aside_and_the_sandbox_starts_empty(tmp_path, content):
    path = tmp_path / "sandbox-state.json"
    path.write_bytes(content)
    state, message = StateFile(path).load(**SETTINGS)
    try:
        assert state.apps == {} and state.profiles == {}
        assert message is not None and str(path) in message and "moved to" in message
        kept = [p for p in tmp_path.iterdir() if p.name.startswith("sandbox-state.json.unreadable")]
        assert len(kept) == 1 and kept[0].read_bytes() == content  # nothing thrown away
        assert not path.exists()
    finally:
        state.close()


def test_an_unchanged_state_is_not_rewritten(tmp_path):
    path = tmp_path / "state.json"
    state = SandboxState(**SETTINGS)
    try:
        state_file = StateFile(path)
        assert state_file.save(state) is True
        assert state_file.save(state) is False
        state.create_member(days=1)
        assert state_file.save(state) is True
    finally:
        state.close()
