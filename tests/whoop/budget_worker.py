"""A separate worker process for the budget tests: calls WHOOP until its app's budget is gone.

Run as ``python budget_worker.py <redis_url> <app_key> <per_minute> <api_base> <token>
<threads>``; prints ``{"ok": n, "statuses": [...]}`` as JSON. It waits for the parent's
"go" key in Redis so that every process and thread starts at the same time.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import redis
import requests

from whoopadmin.whoop.api import WhoopError
from whoopadmin.whoop.client import WhoopClient
from whoopadmin.whoop.ratelimit import KEY_PREFIX, RateBudget


def hammer(budget: RateBudget, api_base: str, token: str, results: list, lock) -> None:
    """Call WHOOP as fast as the budget allows; stop when it says no for long enough."""
    session = requests.Session()
    session.trust_env = False
    codes: list[int] = []
    session.hooks["response"].append(lambda r, *a, **k: codes.append(r.status_code))
    ok = 0
    client = WhoopClient(
        api_base, token, budget=budget, session=session, budget_timeout=0.5, backoff=0.001
    )
    try:
        while True:
            try:
                client.profile()
                ok += 1
            except WhoopError as exc:
                if exc.code != "rate_limited":
                    raise
                break
    finally:
        session.close()
    with lock:
        results.append((ok, codes))


def main() -> None:
    """Entry point (see the module docstring)."""
    url, app_key, per_minute, api_base, token, threads = sys.argv[1:7]
    client = redis.Redis.from_url(url)
    budget = RateBudget(client, app_key, int(per_minute), 10_000)
    client.incr(f"{KEY_PREFIX}:{app_key}:ready")
    deadline = time.monotonic() + 30
    while not client.exists(f"{KEY_PREFIX}:{app_key}:go") and time.monotonic() < deadline:
        time.sleep(0.005)
    results: list = []
    lock = threading.Lock()
    workers = [
        threading.Thread(target=hammer, args=(budget, api_base, token, results, lock))
        for _ in range(int(threads))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    client.close()
    print(
        json.dumps(
            {"ok": sum(r[0] for r in results), "statuses": [c for r in results for c in r[1]]}
        )
    )


if __name__ == "__main__":
    main()
