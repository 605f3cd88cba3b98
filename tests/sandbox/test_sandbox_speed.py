"""The sandbox is fast: a page of 25 records takes well under 5 ms of server time."""

from __future__ import annotations

import statistics
import time

from whoopadmin.sandbox.state import SandboxState


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
