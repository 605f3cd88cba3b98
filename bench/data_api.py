"""Data API at scale: gunicorn serving whoopadmin on PostgreSQL at the support-scale size.

Seeds a fresh PostgreSQL database as ``support_scale.py`` does (100,000 links, 1,000,000
indicator rows, their raw WHOOP records, sync runs, webhook events; ten links hold a year
of data), adds a finished backfill to each heavy link, creates an API key with the
``read`` permission, then times the data API one request at a time over loopback: a page
of 100 records (first pages and pages reached by cursor, year-long windows, heavy links),
the per-user status (heavy and typical links) and 30 days of daily rows. The baselines,
on the same server with the same client: ``/healthz`` and the existing user lookup
``GET /api/v1/users/<id>``. Prints p50/p95/max, the p95 ratio to each baseline, the CPU
time each request cost the gunicorn workers and PostgreSQL, and PASS/MISS against the
target, p95 <= 50 ms.

    python bench/data_api.py [--links 100000] [--indicators 1000000] [--requests 200]
    python bench/data_api.py --links 2000 --indicators 40000 --requests 50   # small

Needs PostgreSQL (a fresh database is created and dropped), a Redis server and gunicorn.
Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
import sqlalchemy as sa
from benchlib import (  # noqa: E402
    ROOT,
    add_service_arguments,
    app_settings,
    child_pids,
    cpu_seconds,
    start_gunicorn,
)
from support_scale import HEAVY_LINKS, link_uid, percentile, seed, timed  # noqa: E402

sys.path.insert(0, str(ROOT))

TARGET_P95_MS = 50.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=100_000)
    parser.add_argument("--indicators", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per call")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests per call")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1, help="random seed for the request mix")
    add_service_arguments(parser, redis_db=11)
    args = parser.parse_args()
    if args.links < 1000:
        sys.exit("--links must be at least 1000")

    from tests.conftest import fresh_pg_database
    from tests.factories import make_user
    from whoopadmin import create_app
    from whoopadmin.api import service as api_service
    from whoopadmin.data.models import Backfill
    from whoopadmin.extensions import db
    from whoopadmin.setup.models import Connection

    url, drop = fresh_pg_database(args.database_url)
    workdir = Path(tempfile.mkdtemp(prefix="whoopadmin-bench-"))
    settings = app_settings(url, args.redis_url, workdir)
    server = watch = None
    rng = random.Random(args.seed)
    n = args.links
    heavy = [n // 2 + k for k in range(HEAVY_LINKS)]
    try:
        app = create_app(dict(settings))
        with app.app_context():
            db.create_all()
            connections = []
            for env, name in (("production", "Acme Health"), ("staging", "Acme Staging")):
                connection = Connection(
                    environment=env,
                    display_name=name,
                    client_id=f"bench-{env}",
                    hostname=f"whoop-{env}.bench.test",
                    allowed_origins=[],
                    app_schemes=[],
                )
                connection.client_secret = f"bench-secret-{env}-0001"
                db.session.add(connection)
                db.session.flush()
                connections.append(connection.id)
            db.session.commit()
            owner = make_user("operator", email="operator@example.com")
            _, key = api_service.create_key(owner, "bench", permissions=["read"])
            started = time.perf_counter()
            with db.engine.begin() as conn:
                counts = seed(
                    conn,
                    links=n,
                    indicators=args.indicators,
                    heavy=heavy,
                    connections=connections,
                )
            now = datetime.now(UTC)
            for link_id in heavy:
                db.session.add(
                    Backfill(
                        link_id=link_id,
                        trigger="connect",
                        status="completed",
                        window_start=now - timedelta(days=365),
                        window_end=now,
                        progress=1.0,
                        counts={"cycle": 365, "sleep": 365, "recovery": 365, "workout": 122},
                        attempts=1,
                        started_at=now,
                        finished_at=now,
                    )
                )
            db.session.commit()
            # A settled database, as autovacuum leaves it: fresh statistics, visibility map.
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
            seeded = time.perf_counter() - started
            db.engine.dispose()
        import redis

        redis.Redis.from_url(args.redis_url).flushdb()
        print(
            f"seeded in {seeded:.0f} s: "
            + ", ".join(f"{count:,} {table}" for table, count in counts.items())
        )

        server, port = start_gunicorn(settings, args.workers, args.threads)
        base = f"http://127.0.0.1:{port}"
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {key}"
        total = args.requests + args.warmup
        api = "/api/v1/users"
        year = {
            "start": (now - timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        window = f"start={year['start']}&end={year['end']}"

        def heavy_uid(k: int) -> str:
            return link_uid(heavy[k % len(heavy)])

        # Cursors into the middle of each heavy link's year (read once, before timing).
        cursors = []
        for k in range(len(heavy)):
            for data_type in ("sleep", "cycle"):
                page = http.get(
                    f"{base}{api}/{heavy_uid(k)}/{data_type}?{window}&limit=150", timeout=30
                ).json()
                cursors.append((heavy_uid(k), data_type, page["next_cursor"]))
        if any(c is None for _, _, c in cursors):
            raise SystemExit("a heavy link has fewer than 150 records: seed more indicators")
        calls = {
            "records, first page": (
                [
                    f"{api}/{heavy_uid(k)}/{('sleep', 'cycle', 'workout')[k % 3]}"
                    f"?{window}&limit=100"
                    for k in range(total)
                ],
                '"records"',
            ),
            "records, by cursor": (
                [
                    f"{api}/{uid}/{data_type}?{window}&limit=100&cursor={cursor}"
                    for uid, data_type, cursor in (rng.choice(cursors) for _ in range(total))
                ],
                '"records"',
            ),
            "records, raw + norm.": (
                [
                    f"{api}/{heavy_uid(k)}/sleep?{window}&limit=100&format=both"
                    for k in range(total)
                ],
                '"raw"',
            ),
            "status, heavy link": (
                [f"{api}/{heavy_uid(k)}/status" for k in range(total)],
                '"types"',
            ),
            "status, typical link": (
                [f"{api}/{link_uid(rng.randint(1, n))}/status" for _ in range(total)],
                '"types"',
            ),
            "daily, 30 days": (
                [f"{api}/{heavy_uid(k)}/daily" for k in range(total)],
                '"days"',
            ),
        }

        # Autocommit: each reading of the backends sees the current ones, not the snapshot
        # its first read took.
        watch = (
            sa.create_engine(url, poolclass=sa.pool.NullPool)
            .connect()
            .execution_options(isolation_level="AUTOCOMMIT")
        )
        local_db = sa.make_url(url).host in (None, "", "127.0.0.1", "localhost", "::1")

        def db_pids() -> set[int]:
            if not local_db:
                return set()
            rows = watch.exec_driver_sql(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return {pid for (pid,) in rows}

        def measure(paths: list[str], marker: str) -> tuple[list[float], float, float | None]:
            timed(http, base, paths[: args.warmup], [marker] * len(paths[: args.warmup]))
            apps, dbs = child_pids(server.pid), db_pids()
            app0, db0 = cpu_seconds(apps), cpu_seconds(dbs)
            times = timed(http, base, paths[args.warmup :], [marker] * len(paths[args.warmup :]))
            app_ms = (cpu_seconds(apps) - app0) * 1000 / len(times)
            db_ms = (cpu_seconds(dbs | db_pids()) - db0) * 1000 / len(times) if dbs else None
            return times, app_ms, db_ms

        load = os.getloadavg()
        health, health_cpu, _ = measure(["/healthz"] * total, '"ok"')
        lookup, lookup_cpu, _ = measure(
            [f"{api}/{link_uid(rng.randint(1, n))}" for _ in range(total)], '"user_id"'
        )
        h95, u95 = percentile(health, 95), percentile(lookup, 95)
        print(
            f"machine: {os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
            f"gunicorn {args.workers} workers x {args.threads} threads; one client, "
            f"{args.requests} timed requests per call after {args.warmup} warm-up"
        )
        print(
            f"baseline /healthz: p50 {percentile(health, 50):.1f} ms, p95 {h95:.1f} ms, "
            f"app CPU {health_cpu:.1f} ms/request"
        )
        print(
            f"baseline user lookup: p50 {percentile(lookup, 50):.1f} ms, p95 {u95:.1f} ms, "
            f"app CPU {lookup_cpu:.1f} ms/request"
        )
        print(
            f"{'call':<22} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'/healthz':>8} "
            f"{'/lookup':>7} {'app CPU':>8} {'db CPU':>7}  target p95 <= {TARGET_P95_MS:.0f} ms"
        )
        missed = 0
        for name, (paths, marker) in calls.items():
            times, app_ms, db_ms = measure(paths, marker)
            p50, p95 = percentile(times, 50), percentile(times, 95)
            ok = p95 <= TARGET_P95_MS
            missed += not ok and not name.startswith("daily")  # daily has no target
            db_text = "-" if db_ms is None else f"{db_ms:.1f}"
            verdict = ("PASS" if ok else "MISS") if not name.startswith("daily") else "(info)"
            print(
                f"{name:<22} {p50:>7.1f} {p95:>7.1f} {max(times):>7.1f} {p95 / h95:>8.1f} "
                f"{p95 / u95:>7.1f} {app_ms:>8.1f} {db_text:>7}  {verdict}"
            )
        load = os.getloadavg()
        print(f"load after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        if missed:
            print(f"{missed} call(s) missed the target")
    finally:
        if watch is not None:
            watch.close()
        if server is not None:
            server.terminate()
            server.wait(20)
        drop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
