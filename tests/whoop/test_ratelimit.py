"""The shared rate-limit budget: real Redis, the real sandbox's limits, threads and processes."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
import requests

from tests.whoop.support import place_sandbox_clock, statuses, wait_for_fresh_window
from whoopadmin.whoop.api import WhoopError
from whoopadmin.whoop.ratelimit import KEY_PREFIX, BudgetExhausted, RateBudget, parse_rate_headers

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "budget_worker.py"
WHOOP_HEADERS = {
    "X-RateLimit-Limit": "100, 100;window=60, 10000;window=86400",
    "X-RateLimit-Remaining": "97",
    "X-RateLimit-Reset": "42",
}


def test_parse_whoops_headers():
    assert parse_rate_headers(WHOOP_HEADERS) == {
        "limit": 100,
        "remaining": 97,
        "reset": 42.0,
        "policies": {60: 100, 86400: 10000},
    }
    lower = {k.lower(): v for k, v in WHOOP_HEADERS.items()}
    assert parse_rate_headers(lower) == parse_rate_headers(WHOOP_HEADERS)
    assert parse_rate_headers({"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "1"}) == {
        "limit": 5,
        "remaining": 1,
        "reset": None,
        "policies": {},
    }
    for broken in (
        {},
        {"X-RateLimit-Limit": "100"},
        dict(WHOOP_HEADERS, **{"X-RateLimit-Remaining": "lots"}),
        dict(WHOOP_HEADERS, **{"X-RateLimit-Remaining": "-1"}),
        dict(WHOOP_HEADERS, **{"X-RateLimit-Limit": " , "}),
    ):
        assert parse_rate_headers(broken) is None


def test_the_budget_grants_exactly_the_limit_then_says_how_long_to_wait(make_budget, redis_client):
    wait_for_fresh_window(redis_client, 3600, 5)
    budget = make_budget(per_minute=3, minute_seconds=3600)
    assert [budget.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = budget.try_acquire()
    assert 0 < wait <= 3600
    started = time.monotonic()
    with pytest.raises(BudgetExhausted) as info:
        budget.acquire(timeout=1)
    # It does not sleep in vain when the budget cannot come back in time.
    assert time.monotonic() - started < 0.5
    assert info.value.code == "rate_limited" and info.value.retry_after > 1
    usage = budget.usage()
    assert (usage["minute_used"], usage["minute_limit"]) == (3, 3)
    assert (usage["day_used"], usage["day_limit"]) == (3, 10_000)
    assert usage["paused_until"] is None and 0 < usage["minute_resets_in"] <= 3600


def test_acquire_waits_for_the_next_window_instead_of_overspending(make_budget):
    budget = make_budget(per_minute=2, minute_seconds=0.25)
    started = time.monotonic()
    waited = [budget.acquire(timeout=5) for _ in range(10)]
    # Ten requests at two a window need five windows: at least three full ones elapse.
    assert 0.75 <= time.monotonic() - started < 3
    assert sum(w > 0 for w in waited) >= 4


def test_the_day_limit_binds_too(make_budget, redis_client):
    wait_for_fresh_window(redis_client, 86_400, 5)
    budget = make_budget(per_minute=100, per_day=2)
    assert budget.try_acquire() == budget.try_acquire() == 0.0
    assert budget.try_acquire() > 60  # not the minute: the day
    assert budget.usage()["day_used"] == 2


def test_many_threads_never_overspend(make_budget, redis_client):
    wait_for_fresh_window(redis_client, 3600, 5)
    budget = make_budget(per_minute=50, minute_seconds=3600)
    granted = []
    lock = threading.Lock()

    def worker():
        mine = sum(1 for _ in range(40) if budget.try_acquire() == 0.0)
        with lock:
            granted.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 50 and len(granted) == 8


def test_observe_adopts_whoops_limits_counts_and_pauses(make_budget, redis_client):
    wait_for_fresh_window(redis_client, 60, 3)
    budget = make_budget(per_minute=100, per_day=10_000)
    budget.observe(dict(WHOOP_HEADERS, **{"X-RateLimit-Reset": "30"}))
    usage = budget.usage()
    assert usage["minute_used"] == 3  # someone else used three: ours rises to WHOOP's
    # The window follows WHOOP's reset (to within the 1.5 s tolerance of whole seconds).
    assert 29 <= usage["minute_resets_in"] <= 31.5
    # WHOOP's lower limit caps ours; a higher one never raises it.
    budget.observe(
        {
            "X-RateLimit-Limit": "5, 5;window=60, 10000;window=86400",
            "X-RateLimit-Remaining": "4",
            "X-RateLimit-Reset": "30",
        }
    )
    assert budget.usage()["minute_limit"] == 5
    budget.observe(
        {
            "X-RateLimit-Limit": "500, 500;window=60, 90000;window=86400",
            "X-RateLimit-Remaining": "499",
            "X-RateLimit-Reset": "30",
        }
    )
    usage = budget.usage()
    assert (usage["minute_limit"], usage["day_limit"]) == (100, 10_000)
    assert usage["minute_used"] == 3  # counts only ever rise
    # Remaining 0 of the day: everything waits for the day's reset.
    budget.observe(
        {
            "X-RateLimit-Limit": "3, 100;window=60, 3;window=86400",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": "5000",
        }
    )
    usage = budget.usage()
    assert usage["day_used"] == 3 and usage["day_limit"] == 3
    assert usage["paused_until"] is not None
    assert 4990 < budget.try_acquire() <= 5001
    # Headers that are missing or broken change nothing.
    budget.observe({"Content-Type": "application/json"})

    def steady(u: dict) -> dict:  # the countdowns move on by themselves
        return {k: v for k, v in u.items() if not k.endswith("_resets_in")}

    assert steady(budget.usage()) == steady(usage)


def test_a_pause_is_seen_by_every_worker(make_budget, whoop_redis_url, app_key):
    budget = make_budget()
    other_connection = redis.Redis.from_url(whoop_redis_url)
    try:
        elsewhere = RateBudget(other_connection, app_key, 100, 10_000)
        budget.pause_until(time.time() + 0.4)
        assert 0.2 < elsewhere.try_acquire() <= 0.45
        assert elsewhere.usage()["paused_until"] is not None
        started = time.monotonic()
        elsewhere.acquire(timeout=2)
        assert time.monotonic() - started >= 0.2
        # A shorter pause never shortens a longer one.
        budget.pause_for(30)
        budget.pause_for(1)
        assert elsewhere.try_acquire() > 25
    finally:
        other_connection.close()


def test_keys_are_namespaced_and_expire(make_budget, redis_client, app_key):
    budget = make_budget()
    budget.acquire()
    budget.observe(WHOOP_HEADERS)
    budget.pause_for(5)
    keys = list(redis_client.scan_iter(match=f"{KEY_PREFIX}:{app_key}:*"))
    assert keys == [f"{KEY_PREFIX}:{app_key}:state".encode()]
    assert 0 < redis_client.pttl(keys[0]) <= 2 * 86_400_000
    budget.reset()
    assert not redis_client.exists(keys[0])


def test_bad_budgets_are_refused(redis_client):
    for key in ("", "two words"):
        with pytest.raises(ValueError):
            RateBudget(redis_client, key, 1, 1)
    with pytest.raises(ValueError):
        RateBudget(redis_client, "ok", -1, 1)


# -- with the sandbox's own rate limits -------------------------------------------------


def _limited_world(world, per_minute: int):
    world.sb.state.apps[world.app.client_id].rate_per_minute = per_minute
    member = world.member(days=30)
    return member, world.tokens(member)["access_token"]


def test_the_client_waits_for_whoops_reset_instead_of_hammering(world, http, make_budget):
    _member, token = _limited_world(world, 5)
    # The configured budget is higher than what WHOOP allows: the headers teach it.
    budget = make_budget(per_minute=100)
    client = world.client(token, budget=budget)
    place_sandbox_clock(world, 57.8)  # WHOOP's minute ends in ~2 s
    statuses(http).clear()
    started = time.monotonic()
    got = [r["id"] for r in itertools.islice(client.iter_collection("cycle", limit=1), 8)]
    elapsed = time.monotonic() - started
    assert len(set(got)) == 8
    assert statuses(http) == [200] * 8  # never a 429: it waited for the reset
    assert elapsed >= 1.5
    assert budget.usage()["minute_limit"] == 5


def test_a_429_pauses_the_app_and_the_call_is_retried_after_the_reset(world, http, make_budget):
    member, token = _limited_world(world, 3)
    other = world.tokens(world.member(days=1))["access_token"]
    place_sandbox_clock(world, 57.8)
    for _ in range(3):  # another installation of the same app uses up the minute
        assert world.http.get(
            f"{world.sb.api_base}/v2/user/profile/basic",
            headers={"Authorization": f"Bearer {other}"},
        ).ok
    statuses(http).clear()
    budget = make_budget(per_minute=100)
    client = world.client(token, budget=budget)
    started = time.monotonic()
    assert client.profile()["user_id"] == member.user_id
    assert statuses(http) == [429, 200]
    assert time.monotonic() - started >= 1.0  # it waited for WHOOP's reset


def test_a_429_beyond_the_allowed_wait_fails_fast_and_pauses_every_worker(
    world, http, make_budget, whoop_redis_url, app_key
):
    member, token = _limited_world(world, 1000)
    budget = make_budget()
    client = world.client(token, budget=budget, max_rate_limit_wait=5)
    world.sb.state.set_faults({"rate_limit_rate": 1.0, "remaining": 1})  # Reset: 60 s
    started = time.monotonic()
    with pytest.raises(WhoopError) as info:
        client.profile()
    assert (info.value.code, info.value.status, info.value.retry_after) == ("rate_limited", 429, 60)
    assert time.monotonic() - started < 1 and statuses(http) == [429]
    other_connection = redis.Redis.from_url(whoop_redis_url)
    try:
        elsewhere = RateBudget(other_connection, app_key, 100, 10_000)
        assert 55 < elsewhere.try_acquire() <= 60
        with pytest.raises(BudgetExhausted):
            elsewhere.acquire(timeout=1)
        second = world.client(token, budget=elsewhere, budget_timeout=1)
        with pytest.raises(WhoopError) as info:
            second.profile()
        assert info.value.code == "rate_limited" and statuses(http) == [429]  # nothing sent
    finally:
        other_connection.close()


def test_without_a_budget_a_429_is_still_honoured(world, http):
    member, token = _limited_world(world, 1000)
    world.sb.state.set_faults({"rate_limit_rate": 1.0, "remaining": 1})
    world.sb.state.update_config({"retry_after_header": False})
    client = world.client(token, max_rate_limit_wait=5)
    started = time.monotonic()
    with pytest.raises(WhoopError) as info:
        client.profile()  # X-RateLimit-Reset says 60 s: more than it may wait
    assert info.value.retry_after == 60 and statuses(http) == [429]
    assert time.monotonic() - started < 1


def test_without_a_budget_a_short_429_is_waited_out(world, http):
    member, token = _limited_world(world, 2)
    place_sandbox_clock(world, 58.5)
    client = world.client(token)
    assert [client.profile()["user_id"] for _ in range(3)] == [member.user_id] * 3
    assert statuses(http)[-4:] == [200, 200, 429, 200]


def test_threads_and_two_processes_never_exceed_the_shared_budget(
    world, whoop_redis_url, app_key, redis_client, make_budget
):
    limit = 20
    _member, token = _limited_world(world, limit)
    place_sandbox_clock(world, 1)  # a fresh WHOOP minute: no reset during the test
    # Slow answers keep many requests in flight at once, and let every process join in.
    world.sb.state.set_faults({"slow_rate": 1.0, "slow_seconds": 0.05})
    wait_for_fresh_window(redis_client, 60, 5)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = [whoop_redis_url, app_key, str(limit), world.sb.api_base, token, "3"]
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 30
        while int(redis_client.get(f"{KEY_PREFIX}:{app_key}:ready") or 0) < 2:
            assert time.monotonic() < deadline, "the worker processes did not start"
            assert all(p.poll() is None for p in procs), procs[0].stderr.read()
            time.sleep(0.01)
        from tests.whoop.budget_worker import hammer

        budget = make_budget(per_minute=limit)
        results: list = []
        lock = threading.Lock()
        threads = [
            threading.Thread(target=hammer, args=(budget, world.sb.api_base, token, results, lock))
            for _ in range(3)
        ]
        redis_client.set(f"{KEY_PREFIX}:{app_key}:go", 1, ex=60)
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        outputs = []
        for proc in procs:
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            outputs.append(json.loads(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        redis_client.delete(f"{KEY_PREFIX}:{app_key}:ready", f"{KEY_PREFIX}:{app_key}:go")
    codes = [c for out in outputs for c in out["statuses"]] + [c for r in results for c in r[1]]
    ok = sum(out["ok"] for out in outputs) + sum(r[0] for r in results)
    assert ok == limit  # every unit of budget was used ...
    assert codes == [200] * limit  # ... and WHOOP never had to refuse one
    assert world.requests_counted() == limit
    assert all(out["ok"] > 0 for out in outputs)  # both processes really took part


def test_requests_session_is_reused_and_closed(world):
    # A client that opened its own session closes it; a borrowed one is left alone.
    member = world.member(days=1)
    token = world.tokens(member)["access_token"]
    from whoopadmin.whoop.client import WhoopClient

    with WhoopClient(world.sb.api_base, token, timeout=5) as client:
        client.session.trust_env = False
        assert client.profile()["user_id"] == member.user_id
    borrowed = requests.Session()
    borrowed.trust_env = False
    try:
        with WhoopClient(world.sb.api_base, token, session=borrowed) as client:
            client.profile()
        assert borrowed.get(f"{world.sb.url}/_sandbox/").ok  # still usable
    finally:
        borrowed.close()


def test_a_reserve_keeps_the_last_share_for_callers_without_one(make_budget, redis_client):
    """Low-priority callers (reserve 0.2) stop at 8 of 10; urgent ones use the last 2."""
    wait_for_fresh_window(redis_client, 3600, 5)
    low = make_budget(per_minute=10, minute_seconds=3600, reserve=0.2)
    high = make_budget(per_minute=10, minute_seconds=3600)
    assert [low.try_acquire() for _ in range(8)] == [0.0] * 8
    assert low.try_acquire() > 0
    with pytest.raises(BudgetExhausted) as info:
        low.acquire(timeout=1)
    assert info.value.reserved is True  # WHOOP's budget is not used up: it is kept
    assert "kept for webhook-driven work" in str(info.value)
    assert [high.try_acquire() for _ in range(2)] == [0.0, 0.0]
    with pytest.raises(BudgetExhausted) as info:
        high.acquire(timeout=1)
    assert info.value.reserved is False
    assert low.usage()["minute_used"] == high.usage()["minute_used"] == 10


def test_the_reserve_applies_to_the_day_and_to_whoops_lower_limits(make_budget, redis_client):
    wait_for_fresh_window(redis_client, 86_400, 5)
    low = make_budget(per_minute=100, per_day=1000, reserve=0.5)
    # WHOOP says the day allows 10: the reserve is a share of that, not of ours.
    low.observe(
        {
            "X-RateLimit-Limit": "10, 100;window=60, 10;window=86400",
            "X-RateLimit-Remaining": "10",
            "X-RateLimit-Reset": "40000",
        }
    )
    assert [low.try_acquire() for _ in range(5)] == [0.0] * 5
    assert low.try_acquire() > 60  # the day's window, not the minute's


def test_usage_keeps_the_last_full_minute(make_budget, redis_client):
    budget = make_budget(per_minute=100, minute_seconds=2)
    wait_for_fresh_window(redis_client, 2, 1.5)
    for _ in range(3):
        assert budget.try_acquire() == 0.0
    wait_for_fresh_window(redis_client, 2, 2)  # into the next window (Redis's clock)
    usage = budget.usage()
    assert usage["minute_used"] == 0 and usage["minute_prev_used"] == 3
    assert budget.try_acquire() == 0.0  # rolling the window keeps the count it ends with
    assert budget.usage()["minute_prev_used"] == 3


def test_a_reserve_must_be_a_share(make_budget):
    for bad in (-0.1, 1.0, 2):
        with pytest.raises(ValueError):
            make_budget(reserve=bad)
