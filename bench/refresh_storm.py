"""Refresh storm benchmark: many links whose WHOOP tokens expire at once, two RQ workers.

Mints real tokens for ``--links`` members in the WHOOP sandbox (its own process on
loopback; it rotates refresh tokens, so a refresh token used twice gets
``invalid_grant``), stores one link per member in a fresh PostgreSQL database with the
access tokens already expired, starts ``--workers`` ``whoopadmin worker refresh``
processes, runs the cron's ``refresh_due()`` with the workers suspended (its queueing
time, reported apart), then resumes them and times them until every link holds new
tokens: one job per link, as the baseline makes one grant per link. With
``--duplicates 1`` (the race check, a run of its own) every refresh the cron queues is
followed at once by a second one for the same link, as a second trigger (an overlapping
cron, a sync job finding the expired token) would queue it, so the two workers mostly take
both at the same moment and race: single-flight must still make exactly one refresh per
link. That run's rate is twice the jobs, so it is not compared with the baseline.

The baseline, in the same run: the same number of ``refresh_token`` grants sent straight
to the same sandbox token endpoint over HTTP (no whoopadmin), from as many processes as
there are workers. The ratio is whoopadmin's refreshes/s over the baseline's.

Checked afterwards: refresh grants the sandbox served == links (no double refresh), 0
``invalid_grant``, every link ``active`` with token version + 1 and holding the live
refresh token, 0 links ``reauth_required``.

Workers run with ``--no-fork`` unless ``--fork`` (whoopadmin's default: a forked child per
job) is given. Also printed: whether the storm fits in the cron's 15-minute refresh-ahead
window.

    python bench/refresh_storm.py [--links 10000] [--workers 2] [--duplicates 0|1] [--fork]

Needs PostgreSQL (a fresh database is created and dropped) and a Redis server (its
database is flushed at the end: use one nobody else does; the run refuses to start on a
non-empty one unless ``--flush``). Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from benchlib import (  # noqa: E402
    ROOT,
    add_connection,
    add_service_arguments,
    app_settings,
    stop_processes,
)

sys.path.insert(0, str(ROOT))

SCOPE = "offline read:profile read:cycles read:recovery read:sleep read:workout"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as uptime shows them."""
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


# -- the sandbox, in its own process --------------------------------------------------


def build_sandbox(links: int, seed: int):
    """One approved app and ``links`` members, each with two token sets: (link, baseline)."""
    from whoopadmin.sandbox import SandboxState

    state = SandboxState(seed=seed)
    app = state.create_app(name="bench", redirect_uris=["http://127.0.0.1/cb"], approved=True)
    people = []
    for _ in range(links):
        user_id = state.create_member(days=1).user_id
        people.append(
            (
                user_id,
                state.grant_tokens(app.client_id, user_id, SCOPE),
                state.grant_tokens(app.client_id, user_id, SCOPE),
            )
        )
    # No webhooks here: stop the sender threads before the sandbox process forks.
    state.close()
    return state, app, people


def count_grants(state) -> dict:
    """Wrap ``state.refresh`` (the token endpoint's refresh grant) to count its outcomes."""
    from whoopadmin.sandbox import SandboxError
    from whoopadmin.sandbox.state import token_key

    counts = {"outcomes": Counter(), "families": Counter()}
    lock = threading.Lock()
    refresh = state.refresh

    def counted(app, refresh_token, scope):
        token = state.tokens.get(token_key(refresh_token))
        try:
            body = refresh(app, refresh_token, scope)
        except SandboxError as exc:
            with lock:
                counts["outcomes"][exc.error] += 1
            raise
        with lock:
            counts["outcomes"]["ok"] += 1
            counts["families"][token.family] += 1
        return body

    state.refresh = counted
    return counts


def sandbox_main(server, conn) -> None:
    """The sandbox process: serve, and answer the benchmark's questions on ``conn``."""
    from whoopadmin.sandbox.state import token_key

    counts = count_grants(server.state)
    server.start()
    while True:
        command, argument = conn.recv()
        if command == "stop":
            return
        if command == "reset":
            counts["outcomes"].clear()
            counts["families"].clear()
            conn.send(None)
        elif command == "counts":
            families = counts["families"]
            conn.send(
                {
                    "outcomes": dict(counts["outcomes"]),
                    "families": len(families),
                    "doubles": sum(n - 1 for n in families.values()),
                }
            )
        elif command == "live":
            # How many of these refresh tokens WHOOP would still accept.
            with server.state.lock:
                tokens = server.state.tokens
                conn.send(
                    sum(
                        1
                        for rt in argument
                        if (t := tokens.get(token_key(rt))) is not None
                        and t.kind == "refresh"
                        and not (t.used or t.revoked)
                    )
                )


class Sandbox:
    """The sandbox served by a forked process; ``ask`` sends it a command."""

    def __init__(self, state) -> None:
        from whoopadmin.sandbox.server import SandboxServer

        self.server = SandboxServer(state)  # binds the port here, serves in the child
        self.token_url = self.server.token_url
        self.env = self.server.env()
        self._conn, child_conn = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("fork").Process(
            target=sandbox_main, args=(self.server, child_conn), name="sandbox", daemon=True
        )
        self.process.start()
        child_conn.close()

    def ask(self, command: str, argument=None):
        """Send a command, return the answer."""
        self._conn.send((command, argument))
        return self._conn.recv()

    def stop(self) -> None:
        """Stop the child and close this process's copy of the socket."""
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send(("stop", None))
            self.process.join(5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        self.server._server.server_close()


# -- the baseline ---------------------------------------------------------------------


def refresh_directly(job: tuple[str, str, str, list[str]]) -> Counter:
    """Baseline: refresh_token grants straight to the token endpoint, one after another."""
    import requests

    token_url, client_id, client_secret, refresh_tokens = job
    statuses: Counter = Counter()
    with requests.Session() as session:
        for refresh_token in refresh_tokens:
            response = session.post(
                token_url,
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": refresh_token,
                    "client_id": client_id,
                    "client_secret": client_secret,
                    "scope": "offline",
                },
                timeout=30,
            )
            statuses[response.status_code] += 1
            response.close()
    return statuses


def baseline(pool, processes: int, token_url: str, whoop_app, refresh_tokens: list[str]):
    """Send every grant from ``processes`` processes; (seconds, statuses)."""
    chunks = [refresh_tokens[i::processes] for i in range(processes)]
    jobs = [(token_url, whoop_app.client_id, whoop_app.client_secret, c) for c in chunks]
    started = time.perf_counter()
    results = pool.map(refresh_directly, jobs, chunksize=1)
    seconds = time.perf_counter() - started
    return seconds, sum(results, Counter())


# -- whoopadmin -----------------------------------------------------------------------


def seed_links(connection_id: int, people, expires_at: datetime) -> list[int]:
    """Insert one active link per member in one bulk statement; their ids."""
    from whoopadmin.connect.models import Link
    from whoopadmin.crypto import associated_data
    from whoopadmin.extensions import db
    from whoopadmin.sealing import keyring

    ring = keyring()
    rows = []
    for user_id, token, _baseline in people:
        uid = uuid.uuid4().hex
        rows.append(
            {
                "uid": uid,
                "connection_id": connection_id,
                "whoop_user_id": user_id,
                "reference_id": f"bench-{user_id}",
                "status": "active",
                "scopes": token["scope"],
                "token_version": 1,
                "access_expires_at": expires_at,
                # Sealed exactly as the Sealed attributes do, bound to the row's uid.
                "access_token_sealed": ring.seal(
                    token["access_token"], associated_data(Link.__tablename__, uid, "access_token")
                ),
                "refresh_token_sealed": ring.seal(
                    token["refresh_token"],
                    associated_data(Link.__tablename__, uid, "refresh_token"),
                ),
            }
        )
    db.session.execute(sa.insert(Link), rows)
    db.session.commit()
    return db.session.scalars(sa.select(Link.id).order_by(Link.id)).all()


def wait_for_workers(queue, count: int, timeout: float = 60) -> None:
    """Block until ``count`` RQ workers listen on ``queue``."""
    from rq import Worker

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Worker.count(queue=queue) >= count:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{count} workers did not start within {timeout:.0f} s")


@contextlib.contextmanager
def duplicated_refreshes():
    """While active, each refresh the cron queues is followed at once by a second one for
    the same link (another trigger), so the two workers take both at the same moment."""
    import whoopadmin.jobs

    enqueue_once = whoopadmin.jobs.enqueue_once

    def enqueue_twice(queue, func, *args, job_id, **options):
        job = enqueue_once(queue, func, *args, job_id=job_id, **options)
        if queue == "refresh":
            enqueue_once(queue, func, args[0], "duplicate", job_id=f"{job_id}-dup", **options)
        return job

    whoopadmin.jobs.enqueue_once = enqueue_twice  # refresh_due imports it when it runs
    try:
        yield
    finally:
        whoopadmin.jobs.enqueue_once = enqueue_once


def wait_for_storm(engine, queue, links: int, timeout: float, worker_procs) -> float:
    """Block until every link has new tokens; return that moment (perf_counter)."""
    from whoopadmin.connect.models import Link

    refreshed = sa.select(sa.func.count()).where(Link.__table__.c.token_version > 1)
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            if conn.execute(refreshed).scalar() >= links:
                return time.perf_counter()
            if any(p.poll() is not None for p in worker_procs):
                raise RuntimeError("a worker exited during the storm")
            # Nothing queued, running or waiting for a retry, and links still stale: stuck.
            if (
                queue.count == 0
                and queue.started_job_registry.count == 0
                and queue.scheduled_job_registry.count == 0
                and queue.failed_job_registry.count
            ):
                raise RuntimeError("refresh jobs failed and none are left to retry")
            time.sleep(0.2)
            conn.rollback()
    raise RuntimeError(f"the storm did not finish within {timeout:.0f} s")


def wait_for_drain(queue, timeout: float) -> None:
    """Block until no refresh job is queued, running or waiting for a retry."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (
            queue.count == 0
            and queue.started_job_registry.count == 0
            and queue.scheduled_job_registry.count == 0
        ):
            return
        time.sleep(0.1)
    raise RuntimeError(f"refresh jobs still pending after {timeout:.0f} s")


def job_outcomes(redis_client, link_ids: list[int], duplicates: bool):
    """What the refresh jobs returned (``refreshed``, ``not_needed`` …, or their status),
    for how many links both jobs ran at the same time (each in its own worker), and the
    seconds from the first job's start to the last one's end."""
    from rq.job import Job

    outcomes: Counter = Counter()
    overlapping = 0
    first_start = last_end = None
    suffixes = ("", "-dup") if duplicates else ("",)
    for start in range(0, len(link_ids), 500):
        chunk = link_ids[start : start + 500]
        ids = [f"refresh-{i}{suffix}" for suffix in suffixes for i in chunk]
        fetched = dict(zip(ids, Job.fetch_many(ids, connection=redis_client), strict=True))
        for job in fetched.values():
            if job is None:
                outcomes["missing"] += 1
                continue
            if job.started_at and (first_start is None or job.started_at < first_start):
                first_start = job.started_at
            if job.ended_at and (last_end is None or job.ended_at > last_end):
                last_end = job.ended_at
            status = job.get_status(refresh=False)
            outcomes[job.return_value() if status == "finished" else f"job {status}"] += 1
        for i in chunk if duplicates else ():
            first, second = fetched[f"refresh-{i}"], fetched[f"refresh-{i}-dup"]
            spans = [(j.started_at, j.ended_at) for j in (first, second) if j is not None]
            if len(spans) == 2 and all(a and b for a, b in spans):
                (a1, b1), (a2, b2) = spans
                overlapping += a1 < b2 and a2 < b1
    span = (last_end - first_start).total_seconds() if first_start and last_end else float("nan")
    return outcomes, overlapping, span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="RQ worker processes")
    parser.add_argument(
        "--duplicates",
        type=int,
        choices=(0, 1),
        default=0,
        help="1: queue a second refresh per link at once (the single-flight race check; its "
        "rate is twice the jobs, not comparable to the baseline's)",
    )
    parser.add_argument(
        "--fork",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="workers fork a child per job (whoopadmin's default) or not (--no-fork, the default "
        "here: what the refresh queue should run with)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for the storm")
    parser.add_argument("--flush", action="store_true", help="flush a non-empty Redis database")
    add_service_arguments(parser, redis_db=11)
    args = parser.parse_args()

    import redis
    from rq import Queue

    from tests.conftest import fresh_pg_database
    from whoopadmin import create_app
    from whoopadmin.connect.models import Link, LinkEvent
    from whoopadmin.extensions import db
    from whoopadmin.sync.jobs import refresh_due
    from whoopadmin.sync.tokens import REFRESH_AHEAD

    redis_client = redis.Redis.from_url(args.redis_url)
    if redis_client.dbsize() and not args.flush:
        sys.exit(
            f"{args.redis_url} is not empty (another benchmark running?): pick another "
            "database with --redis-url, or --flush"
        )
    redis_client.connection_pool.disconnect()  # no open sockets in the forked children
    load_before = load_average()
    t = time.perf_counter()
    state, whoop_app, people = build_sandbox(args.links, args.seed)
    print(f"sandbox: {args.links:,} members, 2 token sets each, in {time.perf_counter() - t:.1f} s")
    sandbox = pool = drop = engine = None
    workers: list[subprocess.Popen] = []
    workdir = Path(tempfile.mkdtemp(prefix="whoopadmin-bench-"))
    try:
        # Fork the sandbox and the baseline's processes now, while this process has no
        # threads, pools or sockets of its own.
        sandbox = Sandbox(state)
        pool = multiprocessing.get_context("fork").Pool(args.workers)
        url, drop = fresh_pg_database(args.database_url)
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        settings = app_settings(
            url,
            args.redis_url,
            workdir,
            **{k.removeprefix("WHOOPADMIN_"): v for k, v in sandbox.env.items()},
        )
        redis_client.flushdb()
        app = create_app(dict(settings))
        with app.app_context():
            db.create_all()
            connection = add_connection(
                whoop_app.client_id,
                whoop_app.client_secret,
                status="active",
                approved_by_whoop=True,
            )
            db.session.commit()
            # Every access token expired a second ago: the whole population is due at once.
            expired = datetime.now(UTC) - timedelta(seconds=1)
            t = time.perf_counter()
            link_ids = seed_links(connection.id, people, expired)
            print(f"links: {len(link_ids):,} inserted in {time.perf_counter() - t:.1f} s")
            db.session.remove()
            db.engine.dispose()

        # Baseline: the same number of refresh grants, straight to the sandbox.
        load_baseline = load_average()
        base_seconds, base_statuses = baseline(
            pool,
            args.workers,
            sandbox.token_url,
            whoop_app,
            [p[2]["refresh_token"] for p in people],
        )
        base_counts = sandbox.ask("counts")
        sandbox.ask("reset")

        env = dict(os.environ, **{f"WHOOPADMIN_{k}": v for k, v in settings.items()})
        worker_log = (workdir / "workers.log").open("w")
        fork_flag = [] if args.fork else ["--no-fork"]
        for _ in range(args.workers):
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "whoopadmin.cli", "worker", *fork_flag, "refresh"],
                    cwd=ROOT,
                    env=env,
                    stdout=worker_log,
                    stderr=subprocess.STDOUT,
                )
            )
        queue = Queue("refresh", connection=redis_client)
        wait_for_workers(queue, args.workers)

        load_storm = load_average()
        # The cron queues with the workers suspended, so its queueing time is measured
        # apart and the refresh rate is the workers' alone (RQ workers look at the
        # suspension once a second: up to 1 s passes before they start).
        from rq.suspension import resume, suspend

        suspend(redis_client)
        cron_started = time.perf_counter()
        with (
            duplicated_refreshes() if args.duplicates else contextlib.nullcontext(),
            app.app_context(),
        ):
            queued = refresh_due()  # the cron's job, every 5 minutes in production
            db.session.remove()
        cron_done = time.perf_counter()
        resume(redis_client)
        started = time.perf_counter()
        try:
            finished = wait_for_storm(engine, queue, len(link_ids), args.timeout, workers)
            wait_for_drain(queue, args.timeout)
        except RuntimeError:
            print((workdir / "workers.log").read_text()[-5000:], file=sys.stderr)
            raise
        drained = time.perf_counter()
        load_end = load_average()
        elapsed = finished - started

        outcomes, overlapping, span = job_outcomes(redis_client, link_ids, bool(args.duplicates))
        counts = sandbox.ask("counts")
        with app.app_context():
            links = Link.__table__.c
            statuses = dict(
                db.session.execute(
                    sa.select(links.status, sa.func.count()).group_by(links.status)
                ).all()
            )
            versions = dict(
                db.session.execute(
                    sa.select(links.token_version, sa.func.count()).group_by(links.token_version)
                ).all()
            )
            events = dict(
                db.session.execute(
                    sa.select(LinkEvent.kind, sa.func.count()).group_by(LinkEvent.kind)
                ).all()
            )
            stored = [link.refresh_token for link in db.session.scalars(sa.select(Link))]
            db.session.remove()
            db.engine.dispose()
        live = sandbox.ask("live", stored)

        n = len(link_ids)
        grants = counts["outcomes"].get("ok", 0)
        invalid = counts["outcomes"].get("invalid_grant", 0)
        errors = {k: v for k, v in counts["outcomes"].items() if k != "ok"}
        rate = n / elapsed
        base_rate = n / base_seconds
        checks = {
            "0 invalid_grant": invalid == 0,
            "0 double refreshes": counts["doubles"] == 0 and grants == n,
            "every link active, version + 1": statuses == {"active": n} and versions == {2: n},
            "every link holds its live refresh token": live == n,
            "one token_refresh event per link": events.get("token_refresh") == n,
        }
        print(
            f"machine: {os.cpu_count()} cores; load average {load_before} (start), "
            f"{load_baseline} (baseline), {load_storm} (storm start), {load_end} (storm end)"
        )
        print(
            f"setup: {args.workers} `whoopadmin worker {'--fork' if args.fork else '--no-fork'} "
            "refresh` processes, the sandbox in its own process, PostgreSQL + Redis on loopback"
        )
        jobs_queued = queued + (n if args.duplicates else 0)
        print(
            f"storm: {n:,} links expired at once; the cron queued {queued:,} refreshes"
            + (f" (each followed by a duplicate: {jobs_queued:,} jobs)" if args.duplicates else "")
            + f" in {cron_done - cron_started:.1f} s (workers suspended meanwhile: queueing "
            f"time, {jobs_queued / (cron_done - cron_started):,.0f} jobs/s)"
        )
        print(
            f"whoopadmin: {n:,} links refreshed in {elapsed:.1f} s after the workers were "
            f"resumed = {rate:,.0f} refreshes/s; first job start to last job end "
            f"{span:.1f} s = {n / span:,.0f}/s (queue drained at {drained - started:.1f} s)"
        )
        print(
            f"baseline: {n:,} refresh grants straight to the sandbox from {args.workers} "
            f"processes in {base_seconds:.1f} s = {base_rate:,.0f} grants/s "
            f"(HTTP {dict(base_statuses)}, sandbox {base_counts['outcomes']})"
        )
        if args.duplicates:
            print("ratio: none (each link queued twice: twice the jobs of the baseline's work)")
        else:
            print(
                f"ratio whoopadmin/baseline (like with like: one job, one grant per link): "
                f"{rate / base_rate:.3f}"
            )
        print(
            f"job outcomes: {dict(outcomes)}"
            + (
                f"; both refreshes of a link ran at the same time for {overlapping:,} links"
                if args.duplicates
                else ""
            )
        )
        print(
            f"sandbox: refresh grants served {grants:,} to {counts['families']:,} token "
            f"families, double refreshes {counts['doubles']}, invalid_grant {invalid}, "
            f"errors {errors or 'none'}"
        )
        print(
            f"database: link statuses {statuses}, token versions {versions}, "
            f"reauth_required {statuses.get('reauth_required', 0)}, live refresh tokens "
            f"{live:,}/{n:,}, events {events}"
        )
        for name, ok in checks.items():
            print(f"{name}: {'PASS' if ok else 'FAIL'}")
        # The cron queues a link REFRESH_AHEAD before its token expires: a storm that takes
        # longer leaves tokens expired until their refresh comes round (syncs refresh lazily).
        window = REFRESH_AHEAD.total_seconds()
        print(
            f"all refreshed within the {window / 60:.0f}-minute refresh-ahead window "
            f"({n / window:.1f}/s needed): {'PASS' if elapsed <= window else 'MISS'}"
        )
        if not all(checks.values()):
            sys.exit(1)
    finally:
        stop_processes(workers)
        if pool is not None:
            pool.terminate()
            pool.join()
        if sandbox is not None:
            sandbox.stop()
        if engine is not None:
            engine.dispose()
        redis_client.flushdb()
        redis_client.close()
        if drop is not None:
            drop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
