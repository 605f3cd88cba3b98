"""Support console at scale: gunicorn serving whoopadmin on PostgreSQL with 100,000 links.

Seeds a fresh PostgreSQL database with server-side SQL (links over two connections,
indicator rows, raw WHOOP records, sync runs, link events, webhook events and audit
entries; a few links carry a year of data), signs a support user in through the real login
form, then times the support pages one request at a time over loopback: the links list
(first page, deep keyset pages, filtered by status and environment), searches (reference
id, WHOOP user id, e-mail, link id; hits and misses) and link pages (typical links and the
heaviest one). The baseline is ``/healthz`` on the same server with the same client. Prints
p50/p95/max per page, the p95 ratio to the baseline, the CPU time each request cost the
gunicorn workers and PostgreSQL (steadier than latency on a shared machine) and PASS/MISS
against the target, p95 <= 100 ms.

    python bench/support_scale.py [--links 100000] [--indicators 1000000] [--requests 200]

Needs PostgreSQL (a fresh database is created and dropped), a Redis server and gunicorn
(a dependency). Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
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

sys.path.insert(0, str(ROOT))

TARGET_P95_MS = 100.0
HEAVY_LINKS = 10  # links with a year of data; the first is the "heavy" link page
HEAVY_DAYS = 365
SYNCED_DAYS = 30  # every other synced link holds a month
PASSWORD = "support-bench-password"
EMAIL = "support@example.com"

# The indicators a synced day yields (record type, name, unit, base value, spread).
INDICATORS = [
    ("recovery", "recovery_score", "%", 1, 98),
    ("recovery", "hrv_rmssd", "ms", 18, 120),
    ("recovery", "resting_heart_rate", "bpm", 40, 30),
    ("recovery", "spo2", "%", 94, 5),
    ("recovery", "skin_temperature", "°C", 32, 3),
    ("sleep", "sleep_performance", "%", 40, 60),
    ("sleep", "sleep_efficiency", "%", 70, 30),
    ("sleep", "sleep_consistency", "%", 40, 60),
    ("sleep", "respiratory_rate", "breaths/min", 12, 6),
    ("sleep", "sleep_duration", "min", 300, 240),
    ("sleep", "sleep_light_time", "min", 150, 120),
    ("sleep", "sleep_deep_time", "min", 40, 80),
    ("sleep", "sleep_rem_time", "min", 50, 80),
    ("sleep", "sleep_awake_time", "min", 10, 60),
    ("sleep", "sleep_disturbance_count", "count", 0, 20),
    ("cycle", "cycle_strain", "strain", 2, 18),
    ("cycle", "cycle_average_heart_rate", "bpm", 55, 30),
    ("cycle", "cycle_max_heart_rate", "bpm", 120, 70),
    ("cycle", "cycle_energy", "kJ", 6000, 8000),
    ("cycle", "cycle_calories", "kcal", 1400, 1900),
]


def link_uid(i: int) -> str:
    """The uid the seed gives link ``i`` (md5 of ``link<i>``, as the SQL computes it)."""
    return hashlib.md5(f"link{i}".encode()).hexdigest()


def seed(conn, *, links: int, indicators: int, heavy: list[int], connections: list[int]) -> dict:
    """Fill the tables with server-side SQL; return how many rows each got."""

    def q(sql: str, params: dict | None = None):
        # Always with parameters, so the driver reads every ``%%`` as a literal ``%``.
        return conn.exec_driver_sql(sql, {"_": 0, **(params or {})})

    # Loading first and indexing after is several times faster than keeping every index
    # up to date row by row (constraints' own indexes stay: they are few and needed).
    tables = [
        "links",
        "indicators",
        "whoop_records",
        "sync_runs",
        "webhook_events",
        "link_events",
        "audit_events",
    ]
    indexes = q(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%(t)s) "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint)",
        {"t": tables},
    ).all()
    for name, _ in indexes:
        q(f'DROP INDEX "{name}"')
    # Links: three in four on the first connection; a few per cent need attention.
    q(
        """
        INSERT INTO links (uid, connection_id, whoop_user_id, reference_id, status,
                           status_reason, email_hash, token_version, refresh_failures, scopes,
                           access_expires_at, last_refresh_at, last_refresh_result,
                           connected_at, created_at, updated_at)
        SELECT md5('link' || i), CASE WHEN i %% 4 = 0 THEN %(c2)s ELSE %(c1)s END,
               1000000 + i, 'ref-' || i,
               CASE WHEN i %% 97 = 0 THEN 'error' WHEN i %% 53 = 0 THEN 'revoked'
                    WHEN i %% 29 = 0 THEN 'reauth_required' ELSE 'active' END,
               CASE WHEN i %% 29 = 0 THEN 'invalid_grant' END,
               md5('mail' || i) || md5('hash' || i), 3, 0,
               'offline read:recovery read:cycles read:sleep read:workout read:profile',
               now() + interval '50 minutes', now() - interval '10 minutes', 'ok',
               now() - (%(n)s - i) * interval '6 minutes',
               now() - (%(n)s - i) * interval '6 minutes', now()
        FROM generate_series(1, %(n)s) AS i
        """,
        {"n": links, "c1": connections[0], "c2": connections[1]},
    )
    # Synced days: the heavy links hold a year each, the rest a month each, spread over
    # the links (7919 is prime: consecutive blocks land on scattered links).
    link_days = max(indicators // len(INDICATORS), 0)
    rest = max(link_days - len(heavy) * HEAVY_DAYS, 0)
    q(
        """
        CREATE TEMP TABLE bench_days AS
        SELECT h.link_id, d AS day, 'h' || h.link_id || '-' || d AS key
        FROM unnest(%(heavy)s::int[]) AS h(link_id), generate_series(0, %(hd)s - 1) AS d
        UNION ALL
        SELECT ((k / %(sd)s)::bigint * 7919 %% %(n)s) + 1, k %% %(sd)s, 'k' || k
        FROM generate_series(0, %(rest)s - 1) AS k
        """,
        {"heavy": heavy, "hd": HEAVY_DAYS, "sd": SYNCED_DAYS, "n": links, "rest": rest},
    )
    names = ", ".join(
        f"('{t}', '{n}', '{u.replace('%', '%%')}', {b}, {s})" for t, n, u, b, s in INDICATORS
    )
    q(
        f"""
        INSERT INTO indicators (link_id, record_type, whoop_id, name, value, unit, start, "end")
        SELECT d.link_id, n.record_type, d.key || '-' || n.record_type, n.name,
               round((n.base + random() * n.spread)::numeric, 2), n.unit,
               date_trunc('day', now()) - d.day * interval '1 day' - interval '8 hours',
               date_trunc('day', now()) - d.day * interval '1 day'
        FROM bench_days AS d
        CROSS JOIN (VALUES {names}) AS n(record_type, name, unit, base, spread)
        ORDER BY d.day DESC, d.link_id
        """
    )
    # Every table below is filled oldest first, so ids grow with time as in production.
    # Raw WHOOP objects: a cycle, a sleep and a recovery per synced day, a workout on
    # every third day.
    q(
        """
        INSERT INTO whoop_records (link_id, type, whoop_id, start, "end", whoop_updated_at,
                                   score_state, deleted, raw, fetched_at)
        SELECT d.link_id, t.type, d.key || '-' || t.type,
               date_trunc('day', now()) - d.day * interval '1 day' - interval '8 hours',
               date_trunc('day', now()) - d.day * interval '1 day',
               to_char(now(), 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'SCORED', false,
               json_build_object(
                   'id', d.key || '-' || t.type, 'user_id', 1000000 + d.link_id,
                   'created_at', now(), 'updated_at', now(),
                   'start', date_trunc('day', now()) - d.day * interval '1 day',
                   'end', date_trunc('day', now()) - d.day * interval '1 day',
                   'timezone_offset', '+01:00', 'score_state', 'SCORED',
                   'score', json_build_object(
                       'strain', round((random() * 20)::numeric, 4),
                       'kilojoule', round((random() * 12000)::numeric, 1),
                       'average_heart_rate', 60 + (random() * 30)::int,
                       'max_heart_rate', 130 + (random() * 60)::int,
                       'recovery_score', (random() * 99)::int,
                       'hrv_rmssd_milli', round((20 + random() * 100)::numeric, 3),
                       'sleep_performance_percentage', (random() * 100)::int)),
               now()
        FROM bench_days AS d
        CROSS JOIN (VALUES ('cycle'), ('sleep'), ('recovery'), ('workout')) AS t(type)
        WHERE t.type <> 'workout' OR d.day %% 3 = 0
        ORDER BY d.day DESC, d.link_id
        """
    )
    # One sync run per record type and day (a webhook-triggered sync; a few fail).
    q(
        """
        INSERT INTO sync_runs (link_id, type, reason, records, outcome, error, started_at,
                               finished_at)
        SELECT d.link_id, t.type,
               CASE WHEN d.day = %(sd)s - 1 THEN 'backfill' ELSE 'webhook' END,
               1, CASE WHEN (d.day + length(t.type)) %% 50 = 0 THEN 'error' ELSE 'ok' END,
               CASE WHEN (d.day + length(t.type)) %% 50 = 0 THEN 'WHOOP answered 503' END,
               date_trunc('day', now()) - d.day * interval '1 day' + interval '1 hour',
               date_trunc('day', now()) - d.day * interval '1 day' + interval '61 minutes'
        FROM bench_days AS d
        CROSS JOIN (VALUES ('cycle'), ('sleep'), ('recovery')) AS t(type)
        ORDER BY d.day DESC, d.link_id
        """,
        {"sd": SYNCED_DAYS},
    )
    # Webhooks: one per record type and synced day.
    q(
        """
        INSERT INTO webhook_events (connection_id, link_id, source, trace_id, type,
                                    whoop_user_id, object_id, status, attempts, result,
                                    received_at, processed_at, body)
        SELECT l.connection_id, d.link_id, 'member', md5(d.key || t.type), t.type || '.updated',
               l.whoop_user_id, d.key || '-' || t.type, 'processed', 1, 'synced',
               date_trunc('day', now()) - d.day * interval '1 day' + interval '59 minutes',
               date_trunc('day', now()) - d.day * interval '1 day' + interval '61 minutes',
               json_build_object('user_id', l.whoop_user_id, 'id', d.key || '-' || t.type,
                                 'type', t.type || '.updated', 'trace_id', md5(d.key || t.type))
        FROM bench_days AS d
        JOIN links AS l ON l.id = d.link_id
        CROSS JOIN (VALUES ('cycle'), ('sleep'), ('recovery')) AS t(type)
        ORDER BY d.day DESC, d.link_id
        """
    )
    # Link events: connect, then two token refreshes for every link; the heavy links
    # refresh every four hours all year, one in forty failing.
    q(
        """
        INSERT INTO link_events (at, connection_id, link_id, kind, reason, details)
        SELECT at, connection_id, link_id, kind, reason, details FROM (
            SELECT l.connected_at + e.n * interval '1 hour' AS at, l.connection_id,
                   l.id AS link_id, CASE WHEN e.n = 0 THEN 'connect' ELSE 'token_refresh' END
                   AS kind, NULL AS reason,
                   CASE WHEN e.n = 0 THEN '{"scopes": "offline read:recovery"}'::json
                        ELSE '{"expires_in": 3600}'::json END AS details
            FROM links AS l CROSS JOIN generate_series(0, 2) AS e(n)
            UNION ALL
            SELECT now() - e.n * interval '4 hours', l.connection_id, l.id,
                   CASE WHEN e.n %% 40 = 0 THEN 'token_refresh_failed' ELSE 'token_refresh' END,
                   CASE WHEN e.n %% 40 = 0 THEN 'timeout' END, '{"expires_in": 3600}'::json
            FROM links AS l CROSS JOIN generate_series(1, %(hd)s * 6) AS e(n)
            WHERE l.id = ANY(%(heavy)s::int[])
        ) AS events
        ORDER BY at
        """,
        {"heavy": heavy, "hd": HEAVY_DAYS},
    )
    # Staff actions on one link in five, and a few dozen on each heavy link.
    q(
        """
        INSERT INTO audit_events (at, actor, action, target_type, target_id, details)
        SELECT now() - (i %% 1000) * interval '1 hour', %(email)s,
               CASE WHEN i %% 3 = 0 THEN 'link.refresh_now' ELSE 'link.resync' END,
               'links', (((i::bigint * 7919) %% %(n)s) + 1)::text, '{}'::json
        FROM generate_series(1, %(n)s / 5) AS i
        UNION ALL
        SELECT now() - e.n * interval '1 day', %(email)s, 'link.resync', 'links',
               h.link_id::text, '{"days": 30}'::json
        FROM unnest(%(heavy)s::int[]) AS h(link_id), generate_series(1, 30) AS e(n)
        ORDER BY 1
        """,
        {"email": EMAIL, "n": links, "heavy": heavy},
    )
    q("DROP TABLE bench_days")
    q("SET LOCAL maintenance_work_mem = '256MB'")
    for _, definition in indexes:
        q(definition)
    return {t: q(f"SELECT count(*) FROM {t}").scalar() for t in tables}


def seeded_status(i: int) -> str:
    """The status the seed gives link ``i`` (as its SQL CASE)."""
    if i % 97 == 0:
        return "error"
    if i % 53 == 0:
        return "revoked"
    return "reauth_required" if i % 29 == 0 else "active"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of ``values`` (p in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def rows_of(body: bytes) -> list[str]:
    """The link uids of a list page's rows, in order."""
    return re.findall(rb'<tr data-link="([0-9a-f]+)"', body)


def timed(http: requests.Session, base: str, paths: list[str], checks: list) -> list[float]:
    """GET each path in turn; return the latencies in ms. Each answer must be a 200 that
    its check accepts (a marker string, or a function of the body: the right link found)."""
    out = []
    for path, check in zip(paths, checks, strict=True):
        start = time.perf_counter()
        response = http.get(base + path, allow_redirects=False, timeout=30)
        body = response.content
        out.append((time.perf_counter() - start) * 1000)
        ok = check.encode() in body if isinstance(check, str) else check(body)
        if response.status_code != 200 or not ok:
            raise SystemExit(f"GET {path} answered {response.status_code}, check failed")
    return out


def finds(*uids: str):
    """A check: the list shows exactly these links (a search: the right one, or none)."""
    expected = [uid.encode() for uid in uids]
    return lambda body: b'data-testid="links"' in body and rows_of(body) == expected


def first_row(uid: str, count: int = 50):
    """A check: a full list page whose first row is this link (newest first, keyset)."""
    return lambda body: rows_of(body)[:1] == [uid.encode()] and len(rows_of(body)) == count


def link_page(i: int):
    """A check: link ``i``'s page (its reference id as the heading), with its timeline."""
    heading = re.compile(rb'<h1 class="h3">ref-%d\b' % i)
    return lambda body: b'data-testid="timeline"' in body and heading.search(body) is not None


def all_rows(check_uid):
    """A check: a full page of rows, each passing ``check_uid`` (a filter honoured)."""
    return lambda body: len(rows_of(body)) == 50 and all(check_uid(u) for u in rows_of(body))


def login(http: requests.Session, base: str) -> None:
    """Sign in through the real form (GET for the CSRF token, then POST)."""
    page = http.get(f"{base}/login", timeout=10).text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    answer = http.post(
        f"{base}/login",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
        timeout=10,
    )
    if answer.status_code not in (302, 303):
        raise SystemExit(f"login failed: HTTP {answer.status_code}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=100_000)
    parser.add_argument("--indicators", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests per page")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1, help="random seed for the request mix")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="pause before timing, server and database up, until Enter (to profile by hand)",
    )
    add_service_arguments(parser, redis_db=12)
    args = parser.parse_args()
    if args.links < 1000:
        sys.exit("--links must be at least 1000")

    from tests.conftest import fresh_pg_database
    from tests.factories import make_user
    from whoopadmin import create_app
    from whoopadmin.connect.service import email_hash
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
            make_user("support", email=EMAIL, password=PASSWORD)
            # A handful of members are findable by e-mail (the hash is keyed by SECRET_KEY).
            mailed = rng.sample(range(1, n + 1), 20)
            hashes = {i: email_hash(f"member{i}@example.com") for i in mailed}
            started = time.perf_counter()
            with db.engine.begin() as conn:
                counts = seed(
                    conn,
                    links=n,
                    indicators=args.indicators,
                    heavy=heavy,
                    connections=connections,
                )
                for i, digest in hashes.items():
                    conn.execute(
                        sa.text("UPDATE links SET email_hash = :h WHERE id = :i"),
                        {"h": digest, "i": i},
                    )
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
        login(http, base)

        total = args.requests + args.warmup

        def ids(count: int, low: int = 1, high: int = n) -> list[int]:
            return [rng.randint(low, high) for _ in range(count)]

        searches, search_checks = [], []
        for k in range(total):
            i = rng.randint(1, n)
            mail = rng.choice(mailed)
            term, check = [
                (f"ref-{i}", finds(link_uid(i))),
                (str(1_000_000 + i), finds(link_uid(i))),
                (f"member{mail}@example.com", finds(link_uid(mail))),
                (link_uid(i), finds(link_uid(i))),
                (f"ref-missing-{i}", finds()),
                (f"nobody{i}@example.com", finds()),
                (str(9_000_000_000 + i), finds()),
            ][k % 7]
            searches.append(term)
            search_checks.append(check)
        deep = ids(total, 1000, n // 10)
        statuses = [("reauth_required", "error", "revoked")[k % 3] for k in range(total)]
        uid_status = {link_uid(i): seeded_status(i) for i in range(1, n + 1)}
        staging = {link_uid(i): i % 4 == 0 for i in range(1, n + 1)}
        typical = ids(total)
        pages = {
            "links, first page": (["/links"] * total, [first_row(link_uid(n))] * total),
            "links, deep page": (
                [f"/links?before={b}" for b in deep],
                [first_row(link_uid(b - 1)) for b in deep],
            ),
            "links, by status": (
                [f"/links?status={status}" for status in statuses],
                [all_rows(lambda u, s=status: uid_status[u.decode()] == s) for status in statuses],
            ),
            "links, status + env": (
                ["/links?status=error&environment=staging"] * total,
                [all_rows(lambda u: uid_status[u.decode()] == "error" and staging[u.decode()])]
                * total,
            ),
            "search": (
                [f"/links?q={requests.utils.quote(term)}" for term in searches],
                search_checks,
            ),
            "link page, typical": (
                [f"/links/{link_uid(i)}" for i in typical],
                [link_page(i) for i in typical],
            ),
            "link page, heavy": (
                [f"/links/{link_uid(heavy[k % 3])}" for k in range(total)],
                [link_page(heavy[k % 3]) for k in range(total)],
            ),
        }
        if args.keep:
            print(f"server on {base} (support {EMAIL} / {PASSWORD}), database {url}")
            with contextlib.suppress(EOFError):  # stdin closed: go straight on
                input("Enter starts the timing")

        # CPU time per request, of the gunicorn workers and of their PostgreSQL backends
        # (when PostgreSQL runs on this machine): unlike latency, it hardly depends on
        # what else the machine is doing.
        # In autocommit: inside one open transaction PostgreSQL's statistics views keep
        # the snapshot its first read took (a frozen list of backends).
        watch = (
            sa.create_engine(url, poolclass=sa.pool.NullPool)
            .connect()
            .execution_options(isolation_level="AUTOCOMMIT")
        )
        local_db = sa.make_url(url).host in (None, "", "127.0.0.1", "localhost", "::1")

        def app_pids() -> set[int]:
            return child_pids(server.pid)

        def db_pids() -> set[int]:
            if not local_db:
                return set()
            rows = watch.exec_driver_sql(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return {pid for (pid,) in rows}

        def measure(paths: list[str], checks: list) -> tuple[list[float], float, float | None]:
            """Latencies (ms) of the timed requests, and app and database CPU ms per request."""
            timed(http, base, paths[: args.warmup], checks[: args.warmup])
            apps, dbs = app_pids(), db_pids()
            app0, db0 = cpu_seconds(apps), cpu_seconds(dbs)
            times = timed(http, base, paths[args.warmup :], checks[args.warmup :])
            dbs_after = db_pids()
            app_ms = (cpu_seconds(apps) - app0) * 1000 / len(times)
            # Backends that came and went in between are not counted: rare with a pool.
            db_ms = (cpu_seconds(dbs | dbs_after) - db0) * 1000 / len(times) if dbs else None
            return times, app_ms, db_ms

        load = os.getloadavg()
        health, health_cpu, _ = measure(["/healthz"] * total, ['"ok"'] * total)
        h50, h95 = percentile(health, 50), percentile(health, 95)
        print(
            f"machine: {os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
            f"gunicorn {args.workers} workers x {args.threads} threads; one client, "
            f"{args.requests} timed requests per page after {args.warmup} warm-up"
        )
        print(
            f"baseline /healthz: p50 {h50:.1f} ms, p95 {h95:.1f} ms, "
            f"app CPU {health_cpu:.1f} ms/request"
        )
        print(
            f"{'page':<22} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'p95/healthz':>11} "
            f"{'app CPU':>8} {'db CPU':>7}  target p95 <= {TARGET_P95_MS:.0f} ms "
            "(CPU: ms per request)"
        )
        missed = 0
        for name, (paths, checks) in pages.items():
            times, app_ms, db_ms = measure(paths, checks)
            p50, p95 = percentile(times, 50), percentile(times, 95)
            ok = p95 <= TARGET_P95_MS
            missed += not ok
            db_text = "-" if db_ms is None else f"{db_ms:.1f}"
            print(
                f"{name:<22} {p50:>7.1f} {p95:>7.1f} {max(times):>7.1f} {p95 / h95:>11.1f} "
                f"{app_ms:>8.1f} {db_text:>7}  {'PASS' if ok else 'MISS'}"
            )
        load = os.getloadavg()
        print(f"load after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        if missed:
            print(f"{missed} page(s) missed the target")
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
