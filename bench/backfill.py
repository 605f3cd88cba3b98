"""Backfill benchmark: sandbox members' WHOOP history into PostgreSQL by RQ workers, end to end.

Creates ``--members`` members with ``--days`` days of history in the WHOOP sandbox (served
fast: its own processes on loopback, rate limits out of the way, no injected faults),
links each one to a connection in a fresh PostgreSQL database with real sandbox tokens,
then queues every link's backfill exactly as a connect does (``backfill_link`` on the
``backfill`` queue) and times ``whoopadmin worker`` processes working through them.

The baseline, in the same run: the same pages (body measurement plus the four
collections over the same window, same ``WhoopClient`` paging, as many processes as there
are workers) fetched from the same sandbox and thrown away, once before and once after the
backfill. whoopadmin's own time is the end-to-end time minus the faster of the two.

Workers run with ``--no-fork`` (as README's production outline runs every queue) unless
``--fork`` (whoopadmin's default: a forked child per job) is given.

    python bench/backfill.py [--members 100] [--days 90] [--workers N] [--fork]

Needs PostgreSQL (a fresh database is created and dropped) and a Redis server (its
database is flushed: use one nobody else does). Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from benchlib import (  # noqa: E402
    ROOT,
    add_connection,
    add_service_arguments,
    app_settings,
    cpu_seconds,
    stop_processes,
)

sys.path.insert(0, str(ROOT))

# High enough never to be reached in a run, low enough for a 32-bit integer column.
NO_LIMIT = 1_000_000_000
TARGET_RECORDS_PER_S = 2_000
# (API collection, the sandbox's name for it), as sync.service.COLLECTIONS walks them.
SANDBOX_COLLECTIONS = {
    "cycle": "cycles",
    "activity/sleep": "sleeps",
    "recovery": "recoveries",
    "activity/workout": "workouts",
}


def build_sandbox(members: int, days: int, seed: int):
    """A sandbox world: one approved app without rate limits, members, tokens, their data."""
    from whoopadmin.sandbox import SandboxState

    # Tokens outlive any run, so no refresh happens in the middle of the measurement.
    state = SandboxState(seed=seed, access_token_ttl=86_400, default_days=days)
    app = state.create_app(
        name="bench",
        redirect_uris=["http://127.0.0.1/cb"],
        rate_limit_per_minute=NO_LIMIT,
        rate_limit_per_day=NO_LIMIT,
        approved=True,
    )
    people = []
    for _ in range(members):
        profile = state.create_member(days=days)
        state.data(profile.user_id)  # generate the history now, not on the first request
        people.append((profile.user_id, state.grant_tokens(app.client_id, profile.user_id)))
    # No webhooks in this benchmark: stop the sender threads before anything forks.
    state.close()
    return state, app, people


def serve_sandbox(state, processes: int):
    """Serve ``state`` from ``processes`` forked copies sharing one listening socket.

    The data is read-only during the run and every token was minted before the fork, so
    the copies answer alike; the sandbox has no GIL in common with whoopadmin's workers.
    """
    from whoopadmin.sandbox.server import SandboxServer

    server = SandboxServer(state)
    context = multiprocessing.get_context("fork")
    children = [
        context.Process(target=server.serve_forever, name=f"sandbox-{i}", daemon=True)
        for i in range(processes)
    ]
    for child in children:
        child.start()
    return server, children


def fetch_member(job: tuple[str, str, datetime, datetime]) -> tuple[int, int, int]:
    """Baseline: fetch what one backfill fetches and discard it; (requests, pages, records)."""
    from whoopadmin.sync.service import COLLECTIONS
    from whoopadmin.whoop.client import WhoopClient

    api_base, token, start, end = job
    pages = records = 0
    with WhoopClient(api_base, token, timeout=30) as client:
        client.body_measurement()
        pages, records = 1, 1
        for _type, collection in COLLECTIONS:
            for page in client.iter_pages(collection, start, end):
                pages += 1
                records += len(page)
        return client.requests_sent, pages, records


def fetch_all(pool, api_base: str, people, days: int) -> dict:
    """Baseline over every member with ``pool``'s processes; seconds and counts."""
    end = datetime.now(UTC)
    start = end - timedelta(days=days)
    jobs = [(api_base, token["access_token"], start, end) for _uid, token in people]
    started = time.perf_counter()
    results = pool.map(fetch_member, jobs, chunksize=1)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "requests": sum(r[0] for r in results),
        "pages": sum(r[1] for r in results),
        "records": sum(r[2] for r in results),
    }


def sandbox_ids(state, user_id: int, start: datetime, end: datetime) -> set[tuple[str, str]]:
    """(type, WHOOP id) of the member's records the sandbox serves for ``[start, end)``."""
    from whoopadmin.whoop import normalise as norm

    data = state.data(user_id)
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    found = set()
    for collection, attribute in SANDBOX_COLLECTIONS.items():
        records = getattr(data, attribute)
        page, _more = records.page(start_ms, end_ms, None, len(records) + 1, True)
        found.update(norm.record_key(collection, record, user_id) for record in page)
    return found


def wait_for_workers(redis_client, count: int, timeout: float = 60) -> None:
    """Block until ``count`` RQ workers listen on the backfill queue."""
    from rq import Worker

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(Worker.all(connection=redis_client)) >= count:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{count} workers did not start within {timeout:.0f} s")


def wait_for_jobs(redis_client, job_ids: list[str], timeout: float) -> None:
    """Block until every job finished; raise on a failed (or retry-scheduled) one.

    Polls the queue's registries (three ZCARDs a round trip), not the jobs themselves,
    so that waiting costs the machine next to nothing.
    """
    from rq import Queue
    from rq.job import Job, JobStatus

    queue = Queue("backfill", connection=redis_client)
    keys = [
        queue.finished_job_registry.key,
        queue.failed_job_registry.key,
        queue.scheduled_job_registry.key,
    ]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with redis_client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zcard(key)
            finished, failed, scheduled = pipe.execute()
        if failed or scheduled or finished >= len(job_ids):
            break
        time.sleep(0.05)
    else:
        raise RuntimeError(f"the backfill did not finish within {timeout:.0f} s")
    jobs = Job.fetch_many(job_ids, connection=redis_client)
    bad = [
        job for job in jobs if job is None or job.get_status(refresh=False) != JobStatus.FINISHED
    ]
    if bad:
        result = bad[0].latest_result() if bad[0] is not None else None
        detail = result.exc_string if result is not None else ""
        raise RuntimeError(f"{len(bad)} backfill job(s) did not finish:\n{detail}")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as uptime shows them."""
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument(
        "--workers",
        type=int,
        default=2 * (os.cpu_count() or 1),
        help="whoopadmin worker processes (and baseline fetchers); default two per core, as "
        "a backfill job waits on PostgreSQL, Redis and WHOOP for about half its time",
    )
    parser.add_argument(
        "--fork",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="workers fork a child per job (whoopadmin's default) or not (--no-fork, the "
        "default here: what README's production outline runs)",
    )
    parser.add_argument("--sandbox-processes", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the backfill")
    add_service_arguments(parser, redis_db=13)
    args = parser.parse_args()

    import redis

    from tests.conftest import fresh_pg_database
    from whoopadmin import create_app
    from whoopadmin.connect.models import Link
    from whoopadmin.extensions import db
    from whoopadmin.jobs import RETRY, enqueue_once
    from whoopadmin.sync.models import Indicator, SyncRun, WhoopRecord

    # Imported before the baseline's processes fork, so its timing holds no imports.
    from whoopadmin.sync.service import COLLECTIONS  # noqa: F401

    load_before = load_average()
    t = time.perf_counter()
    state, whoop_app, people = build_sandbox(args.members, args.days, args.seed)
    print(
        f"sandbox: {args.members} members x {args.days} days generated in "
        f"{time.perf_counter() - t:.1f} s"
    )
    server, sandbox_children = serve_sandbox(state, args.sandbox_processes)
    pool = drop = workdir = redis_client = worker_log = None
    workers: list[subprocess.Popen] = []
    try:
        # Fork the baseline's processes now: no threads, database or Redis connections yet.
        pool = multiprocessing.get_context("fork").Pool(args.workers)
        url, drop = fresh_pg_database(args.database_url)
        workdir = Path(tempfile.mkdtemp(prefix="whoopadmin-bench-"))
        settings = app_settings(
            url,
            args.redis_url,
            workdir,
            **{k.removeprefix("WHOOPADMIN_"): v for k, v in server.env().items()},
        )
        redis_client = redis.Redis.from_url(args.redis_url)
        redis_client.flushdb()
        app = create_app(dict(settings))
        with app.app_context():
            db.create_all()
            connection = add_connection(
                whoop_app.client_id,
                whoop_app.client_secret,
                status="active",
                # The shared budget must not throttle the run: WHOOP's default is 100 a
                # minute, which would make this a benchmark of waiting.
                rate_limit_per_minute=NO_LIMIT,
                rate_limit_per_day=NO_LIMIT,
                approved_by_whoop=True,
                backfill_days=args.days,
            )
            now = datetime.now(UTC)
            for user_id, token in people:
                link = Link(
                    connection_id=connection.id,
                    whoop_user_id=user_id,
                    reference_id=f"bench-{user_id}",
                    status="active",
                    scopes=token["scope"],
                    access_expires_at=now + timedelta(seconds=token["expires_in"]),
                )
                link.access_token = token["access_token"]
                link.refresh_token = token["refresh_token"]
                db.session.add(link)
            db.session.commit()
            link_ids = db.session.scalars(sa.select(Link.id).order_by(Link.id)).all()
            db.session.remove()
            db.engine.dispose()

        env = dict(os.environ, **{f"WHOOPADMIN_{k}": v for k, v in settings.items()})
        worker_log = (workdir / "workers.log").open("w")
        for _ in range(args.workers):
            workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "whoopadmin.cli",
                        "worker",
                        "backfill",
                        *([] if args.fork else ["--no-fork"]),
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=worker_log,
                    stderr=subprocess.STDOUT,
                )
            )
        wait_for_workers(redis_client, args.workers)

        fetch_before = fetch_all(pool, server.api_base, people, args.days)

        # CPU seconds during the backfill: the workers, the sandbox and (when PostgreSQL
        # runs here) the database's backends. --no-fork workers keep one connection each,
        # opened during the backfill, so their backends' totals at the end are all of it.
        cpu_start = {
            "workers": cpu_seconds({w.pid for w in workers}),
            "sandbox": cpu_seconds({c.pid for c in sandbox_children}),
        }
        load_start = load_average()
        window_from = datetime.now(UTC)
        started = time.perf_counter()
        with app.app_context():
            # As a connect queues it (connect.service._queue_backfill).
            job_ids = [
                enqueue_once(
                    "backfill",
                    "whoopadmin.sync.jobs.backfill_link",
                    link_id,
                    job_id=f"backfill-{link_id}",
                    retry=RETRY,
                ).id
                for link_id in link_ids
            ]
        try:
            wait_for_jobs(redis_client, job_ids, args.timeout)
        except RuntimeError:
            print((workdir / "workers.log").read_text()[-5000:], file=sys.stderr)
            raise
        elapsed = time.perf_counter() - started
        window_to = datetime.now(UTC)
        load_end = load_average()
        cpu = {"sandbox": cpu_seconds({c.pid for c in sandbox_children}) - cpu_start["sandbox"]}
        if not args.fork:  # a forking worker's jobs run in children that are gone by now
            cpu["workers"] = cpu_seconds({w.pid for w in workers}) - cpu_start["workers"]
        if not args.fork and sa.make_url(url).host in ("127.0.0.1", "localhost", "::1"):
            with app.app_context():
                backends = db.session.scalars(
                    sa.text(
                        "SELECT pid FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).all()
                db.session.remove()
            cpu["PostgreSQL"] = cpu_seconds(set(backends))

        fetch_after = fetch_all(pool, server.api_base, people, args.days)
        fetch = min(fetch_before["seconds"], fetch_after["seconds"])

        # Completeness: every record WHOOP (the sandbox) holds for the window is stored
        # once. Each job picked its window when it ran, somewhere in [window_from,
        # window_to]; a record must be stored if it overlaps every such window, and may
        # be stored if it overlaps any of them.
        with app.app_context():
            rows = db.session.execute(
                sa.select(WhoopRecord.link_id, WhoopRecord.type, WhoopRecord.whoop_id)
            ).all()
            records = len(rows)
            indicators = db.session.scalar(sa.select(sa.func.count()).select_from(Indicator))
            orphans = db.session.scalar(
                sa.select(sa.func.count())
                .select_from(Indicator)
                .outerjoin(
                    WhoopRecord,
                    sa.and_(
                        WhoopRecord.link_id == Indicator.link_id,
                        WhoopRecord.type == Indicator.record_type,
                        WhoopRecord.whoop_id == Indicator.whoop_id,
                    ),
                )
                .where(WhoopRecord.id.is_(None))
            )
            failed_runs = db.session.scalar(
                sa.select(sa.func.count()).select_from(SyncRun).where(SyncRun.outcome != "ok")
            )
            user_of = dict(db.session.execute(sa.select(Link.id, Link.whoop_user_id)).all())
            db.session.remove()
            db.engine.dispose()
        days = timedelta(days=args.days)
        stored: dict[int, set] = {uid: set() for uid in user_of.values()}
        for link_id, type_, whoop_id in rows:
            stored[user_of[link_id]].add((type_, whoop_id))
        missing = unexpected = bodies = 0
        for user_id, keys in stored.items():
            body = ("body_measurement", str(user_id))
            bodies += body in keys
            must = sandbox_ids(state, user_id, window_to - days, window_from)
            may = sandbox_ids(state, user_id, window_from - days, window_to)
            missing += len(must - keys)
            unexpected += len(keys - may - {body})
        distinct = len(set(rows))
        complete = (
            missing == 0
            and unexpected == 0
            and bodies == len(stored) == args.members
            and distinct == records
            and orphans == 0
            and failed_runs == 0
        )

        own = elapsed - fetch
        records_per_s = records / elapsed
        print(
            f"machine: {os.cpu_count()} cores; load average {load_before} (start), "
            f"{load_start} (backfill start), {load_end} (backfill end)"
        )
        print(
            f"setup: {args.workers} whoopadmin workers "
            f"({'forking' if args.fork else '--no-fork'}; as many baseline fetchers), "
            f"{args.sandbox_processes} sandbox process(es), PostgreSQL + Redis on loopback; "
            f"rate limits of the connection's budget and the sandbox app {NO_LIMIT:,} a "
            "minute and a day (never reached), no injected faults"
        )
        print(f"members {args.members}, days {args.days}")
        print(
            f"records {records:,} (incl. {bodies} body measurements), "
            f"normalised rows {indicators:,}"
        )
        print(
            f"end to end {elapsed:.2f} s: {records_per_s:,.0f} records/s, "
            f"{indicators / elapsed:,.0f} rows/s"
        )
        for name, f in (("before", fetch_before), ("after", fetch_after)):
            print(
                f"fetch only ({name}) {f['seconds']:.2f} s: {f['requests']:,} requests, "
                f"{f['pages']:,} pages, {f['records']:,} records"
            )
        print(
            f"whoopadmin own {own:.2f} s = end to end - fetch {fetch:.2f} s; "
            f"own/fetch {own / fetch:.2f}; share of time in whoopadmin {own / elapsed:.0%}"
        )
        print(
            "CPU during the backfill: "
            + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in cpu.items())
            + f" ({os.cpu_count()} cores x {elapsed:.1f} s = {os.cpu_count() * elapsed:.1f} s)"
        )
        print(
            f"completeness: missing {missing}, unexpected {unexpected}, duplicates "
            f"{records - distinct}, indicators without a record {orphans}, failed sync runs "
            f"{failed_runs}: {'OK' if complete else 'MISMATCH'}"
        )
        print(
            f"target >= {TARGET_RECORDS_PER_S:,} records/s: "
            f"{'PASS' if records_per_s >= TARGET_RECORDS_PER_S else 'MISS'}"
        )
        print(f"target own <= fetch: {'PASS' if own <= fetch else 'MISS'}")
        if not complete:
            sys.exit(1)
    finally:
        stop_processes(workers)
        if worker_log is not None:
            worker_log.close()
        if pool is not None:
            pool.terminate()
            pool.join()
        for child in sandbox_children:
            child.terminate()
            child.join(10)
        if redis_client is not None:
            redis_client.flushdb()
            redis_client.close()
        if drop is not None:
            drop()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
