"""The sandbox is fast: a page of 25 records takes well under 5 ms of server time."""

from __future__ import annotations

import statistics
import time

import pytest

from whoopadmin.sandbox.state import SandboxError, SandboxState


def test_a_year_generates_quickly():
    state = SandboxState(seed=11)
    try:
        profile = state.create_member(days=365)
        started = time.perf_counter()
        md = state.data(profile.user_id)
        assert time.perf_counter() - started < 0.5
        assert len(md.cycles) >= 365
    finally:
        state.close()


def test_page_of_25_server_time(whoop):
    app = whoop.new_app()
    member = whoop.new_member(days=365)
    token = whoop.tokens(app, member)["access_token"]
    timings = {}
    for path in ("/v2/cycle", "/v2/recovery", "/v2/activity/sleep", "/v2/activity/workout"):
        whoop.api(token, path, limit=25)  # warm up
        samples = []
        next_token = None
        for _ in range(10):
            params = {"limit": 25, **({"nextToken": next_token} if next_token else {})}
            resp = whoop.api(token, path, **params)
            assert resp.status_code == 200 and len(resp.json()["records"]) == 25
            next_token = resp.json()["next_token"]
            timing = resp.headers["Server-Timing"]
            assert timing.startswith("app;dur=")
            samples.append(float(timing.split("=")[1]))
        timings[path] = statistics.median(samples)
    assert all(ms < 5 for ms in timings.values()), timings


def test_a_refresh_revokes_its_own_family_only():
    """A refresh revokes the tokens of its own family (found through ``families``, not by
    scanning every token: bench/refresh_storm.py measures that) and nobody else's."""
    state = SandboxState(seed=12)
    try:
        app = state.create_app(approved=True)
        members = [state.create_member(days=1) for _ in range(50)]
        issued = [state.grant_tokens(app.client_id, m.user_id, "offline") for m in members]
        for _ in range(3):
            issued = [state.refresh(app, t["refresh_token"], None) for t in issued]
        fresh = state.refresh(app, issued[0]["refresh_token"], None)
        assert state.bearer(fresh["access_token"]).user_id == members[0].user_id
        with pytest.raises(SandboxError):
            state.bearer(issued[0]["access_token"])  # the old access token died with it
        for other, member in zip(issued[1:], members[1:], strict=True):
            assert state.bearer(other["access_token"]).user_id == member.user_id
        assert len(state.families) == len(members)
    finally:
        state.close()
