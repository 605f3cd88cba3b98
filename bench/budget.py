"""WHOOP budget benchmark: the WHOOP calls whoopadmin makes per member per day.

The WHOOP sandbox (over real HTTP on loopback) plays ``--members`` members through
simulated days as WHOOP produces their data: each evening a new cycle opens, each
morning the night's sleep and its recovery arrive (some first as ``PENDING_SCORE``,
scored an hour later: an edit), naps on some afternoons, 0–2 workouts a day (some
rescored later, a few deleted, a few naps deleted), each followed by WHOOP's webhooks
(``*.updated`` / ``*.deleted``) to whoopadmin's webhook URL (a werkzeug server in this
process). whoopadmin does its normal work: the webhook-driven fetches, the cron's
``refresh_due`` / ``reconcile_due`` / ``sweep_events`` / health ``evaluate_all`` and the
jobs they queue, run by an in-process RQ worker.

Phases, on one simulated clock (``time-machine`` moves the clock of this process, so
whoopadmin, the sandbox and its webhook signatures share it; nothing sleeps):

1. **connect**: every member linked, the connect's backfill (``--backfill-days``) run.
2. **webhooks working**: ``--days`` full days; then a quiet drain (no member activity,
   26 h: every daily reconciliation runs once more) and a completeness check.
3. **webhooks silent**: the sandbox stops sending webhooks (as when WHOOP's deliveries
   fail); ``--silent-days`` full days, a drain, a completeness check.

Calls are whoopadmin's own count (``health.calls``: every attempt to WHOOP's API and
token endpoint, by purpose) per UTC day, checked against what the sandbox served. Steady
state: the mean of the full days after the first of each phase. The completeness check
compares every record the sandbox holds (cycles, sleeps, recoveries, workouts, the body
measurement) with whoopadmin's stored version (``updated_at``), and every record deleted
at WHOOP with a deleted one here; any difference fails the run (exit 1).

    python bench/budget.py [--members 10] [--days 3] [--silent-days 3] [--backfill-days 30]

Needs PostgreSQL (a fresh database is created and dropped) and a Redis server (its
database is flushed: use one nobody else does). Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from benchlib import (  # noqa: E402
    ROOT,
    add_connection,
    add_service_arguments,
    app_settings,
    free_port,
)

sys.path.insert(0, str(ROOT))

NO_LIMIT = 1_000_000_000
DAY_LIMIT, MINUTE_LIMIT = 10_000, 100  # WHOOP's default budget per app
TARGET_WEBHOOKS, TARGET_SILENT = 10, 30  # calls per member per day
DRAIN = timedelta(hours=26)
SANDBOX_COLLECTIONS = {
    "cycle": "cycles",
    "activity/sleep": "sleeps",
    "recovery": "recoveries",
    "activity/workout": "workouts",
}


def load_average() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def iso(moment: datetime) -> str:
    from whoopadmin.sandbox import data as gen

    return gen.iso_ms(int(moment.timestamp() * 1000))


class Members:
    """What the members do, as timed actions on the sandbox (each sends its webhooks)."""

    def __init__(self, state, user_ids: list[int], seed: int):
        self.state, self.user_ids = state, user_ids
        self.rng = random.Random(f"budget:{seed}")
        self.actions: list = []  # (when, seq, description, function)
        self.seq = itertools.count()
        self.deleted: dict[int, set[tuple[str, str]]] = {uid: set() for uid in user_ids}
        # The newest cycle's start per member: a planned evening must come well after it.
        self.last_onset = {
            uid: datetime.fromisoformat(state.data(uid).cycles.records[0]["start"])
            for uid in user_ids
        }
        self.done = Counter()

    def at(self, when: datetime, what: str, func) -> None:
        heapq.heappush(self.actions, (when, next(self.seq), what, func))

    def plan_day(self, midnight: datetime) -> None:
        """Plan every member's evening (new cycle) and following day, from ``midnight``."""
        for uid in self.user_ids:
            profile = self.state.get_member(uid)
            local = timedelta(minutes=profile.tz_minutes)
            onset = midnight + timedelta(hours=23) - local
            onset += timedelta(minutes=self.rng.randint(-80, 75))
            if onset < self.last_onset[uid] + timedelta(hours=12):
                continue  # the sandbox's history already holds this evening
            self.last_onset[uid] = onset
            self._plan_member(uid, onset)

    def _plan_member(self, uid: int, onset: datetime) -> None:
        from whoopadmin.sandbox import changes

        rng, state = self.rng, self.state
        self.at(onset, "cycle", lambda: changes.start_cycle(state, uid, iso(onset)))
        wake = onset + timedelta(minutes=rng.randint(350, 560))
        pending = rng.random() < 0.25  # WHOOP still scoring when it first sends the sleep

        def sleep_arrives():
            sleep = changes.create_sleep(
                state,
                uid,
                {
                    "start": iso(onset),
                    "end": iso(wake),
                    "score_state": "PENDING_SCORE" if pending else "SCORED",
                },
            )
            if pending:
                self.at(
                    wake + timedelta(minutes=rng.randint(50, 120)),
                    "sleep scored",
                    lambda: changes.update_sleep(
                        state, uid, sleep["id"], {"score_state": "SCORED"}
                    ),
                )

        self.at(wake + timedelta(minutes=rng.randint(5, 40)), "sleep", sleep_arrives)
        next_onset = onset + timedelta(days=1)
        if rng.random() < 0.12:
            start = wake + timedelta(minutes=rng.randint(240, 480))
            end = start + timedelta(minutes=rng.randint(20, 90))
            if end < next_onset - timedelta(hours=1):
                self.at(end + timedelta(minutes=10), "nap", self._nap(uid, start, end))
        slot = wake + timedelta(minutes=60)
        for _ in range(rng.choices([0, 1, 2], weights=[35, 50, 15])[0]):
            start = slot + timedelta(minutes=rng.randint(0, 300))
            end = start + timedelta(minutes=rng.randint(20, 120))
            if end > next_onset - timedelta(minutes=60):
                break
            self.at(
                end + timedelta(minutes=rng.randint(5, 30)),
                "workout",
                self._workout(uid, start, end),
            )
            slot = end + timedelta(minutes=30)

    def _nap(self, uid, start, end):
        from whoopadmin.sandbox import changes

        def run():
            nap = changes.create_sleep(
                self.state, uid, {"start": iso(start), "end": iso(end), "nap": True}
            )
            if self.rng.random() < 0.2:  # not a nap after all

                def delete():
                    changes.delete_sleep(self.state, uid, nap["id"])
                    self.deleted[uid].add(("sleep", nap["id"]))

                self.at(end + timedelta(hours=self.rng.randint(1, 5)), "nap deleted", delete)

        return run

    def _workout(self, uid, start, end):
        from whoopadmin.sandbox import changes

        def run():
            workout = changes.create_workout(
                self.state, uid, {"start": iso(start), "end": iso(end)}
            )
            draw = self.rng.random()
            later = end + timedelta(hours=self.rng.randint(1, 6))
            if draw < 0.05:

                def delete():
                    changes.delete_workout(self.state, uid, workout["id"])
                    self.deleted[uid].add(("workout", workout["id"]))

                self.at(later, "workout deleted", delete)
            elif draw < 0.20:
                self.at(
                    later,
                    "workout rescored",
                    lambda: changes.update_workout(
                        self.state, uid, workout["id"], {"score_state": "SCORED"}
                    ),
                )

        return run

    def run_due(self, now: datetime) -> int:
        n = 0
        while self.actions and self.actions[0][0] <= now:
            _when, _seq, what, func = heapq.heappop(self.actions)
            func()
            self.done[what] += 1
            n += 1
        return n


class Simulation:
    """The simulated clock, whoopadmin's cron and worker, and the call counts."""

    def __init__(self, traveller, app, sandbox, whoop_app, connection_id, members, step):
        self.traveller, self.app, self.sb = traveller, app, sandbox
        self.whoop_app, self.connection_id, self.members = whoop_app, connection_id, members
        self.step = step
        self.now = datetime.now(UTC)
        self.sandbox_api_calls = Counter()  # UTC day -> API requests the sandbox served

    def move_to(self, moment: datetime) -> None:
        self._note_sandbox_day()
        self.traveller.move_to(moment)
        self.now = moment

    def _note_sandbox_day(self) -> None:
        day, count = self.whoop_app.day_window
        if day:
            day_date = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)).date()
            self.sandbox_api_calls[day_date] = max(self.sandbox_api_calls[day_date], count)

    def run_jobs(self) -> None:
        from rq import SimpleWorker

        from whoopadmin.jobs import get_queue, make_worker
        from whoopadmin.webhooks.handoff import flush_all

        queues = ("webhooks", "refresh", "sync", "backfill")
        for _ in range(20):
            self.sb.state.dispatcher.wait_idle(30)
            flush_all()
            with self.app.app_context():
                if not any(len(get_queue(q)) for q in queues):
                    return
                make_worker(self.app, queues, worker_class=SimpleWorker).work(
                    burst=True, logging_level="WARNING"
                )

    def cron(self, previous: datetime) -> None:
        """The cron's periodic jobs that touch WHOOP calls, as ``whoopadmin cron`` runs them."""
        from whoopadmin.health.jobs import evaluate_all
        from whoopadmin.sync.jobs import reconcile_due, refresh_due
        from whoopadmin.webhooks.jobs import sweep_events

        with self.app.app_context():
            refresh_due()
            sweep_events()
            evaluate_all(self.now)
            hour = previous.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            while hour <= self.now:
                reconcile_due(hour)
                hour += timedelta(hours=1)

    def run_until(self, end: datetime, active: bool) -> None:
        """Step the clock to ``end``; members act (and plan their days) while ``active``."""
        while self.now < end:
            previous = self.now
            moment = min(end, self.now + self.step)
            if active:
                midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
                if previous < midnight <= moment or not self.members.actions:
                    self.members.plan_day(midnight)
            self.move_to(moment)
            if active:
                self.members.run_due(moment)
            self.run_jobs()
            self.cron(previous)
            self.run_jobs()
        self._note_sandbox_day()

    def calls(self) -> dict:
        """whoopadmin's counts so far, by UTC day and purpose (``health.calls``)."""
        from whoopadmin.health import calls

        with self.app.app_context():
            days = calls.by_day(self.connection_id, calls.KEEP_DAYS, self.now)
        return {d["day"]: Counter(d["purposes"]) for d in days}


def sandbox_records(state, user_id: int, since: datetime) -> dict[tuple[str, str], str]:
    """(type, WHOOP id) -> updated_at of every record the sandbox serves since ``since``."""
    from whoopadmin.whoop import normalise as norm

    data = state.data(user_id)
    start_ms = int(since.timestamp() * 1000)
    end_ms = int(time.time() * 1000) + 86_400_000
    found = {}
    for collection, attribute in SANDBOX_COLLECTIONS.items():
        records = getattr(data, attribute)
        page, _more = records.page(start_ms, end_ms, None, len(records) + 1, True)
        for record in page:
            found[norm.record_key(collection, record, user_id)] = record["updated_at"]
    return found


def check_complete(app, state, members: Members, since: datetime, link_users: dict) -> dict:
    """Compare the sandbox's records with whoopadmin's; the differences, by kind."""
    from whoopadmin.sync.models import WhoopRecord

    with app.app_context():
        from whoopadmin.extensions import db

        rows = db.session.execute(
            sa.select(
                WhoopRecord.link_id,
                WhoopRecord.type,
                WhoopRecord.whoop_id,
                WhoopRecord.whoop_updated_at,
                WhoopRecord.deleted,
                WhoopRecord.start,
            )
        ).all()
        db.session.remove()
    stored: dict[int, dict] = {uid: {} for uid in link_users.values()}
    for link_id, type_, whoop_id, updated, deleted, start in rows:
        stored[link_users[link_id]][(type_, whoop_id)] = (updated, deleted, start)
    problems = Counter()
    examples = []
    checked = 0
    for uid, have in stored.items():
        want = sandbox_records(state, uid, since)
        for key, updated in want.items():
            checked += 1
            got = have.get(key)
            if got is None:
                problems["missing"] += 1
            elif got[1]:
                problems["marked deleted, still at WHOOP"] += 1
            elif got[0] != updated:
                problems["stale version"] += 1
            else:
                continue
            examples.append((uid, key, updated, got))
        body = ("body_measurement", str(uid))
        if body not in have or have[body][1]:
            problems["body measurement missing"] += 1
        for key in members.deleted[uid]:
            checked += 1
            got = have.get(key)
            if got is not None and not got[1]:
                problems["deleted at WHOOP, still live"] += 1
                examples.append((uid, key, "deleted", got))
        for key, (updated, deleted, start) in have.items():
            if (
                deleted
                or key in want
                or key[0] == "body_measurement"
                or key in members.deleted[uid]
            ):
                continue
            # Stored, not deleted, not at WHOOP: fine only if it lies before the window.
            if start is not None and start.replace(tzinfo=UTC) < since + timedelta(days=1):
                continue
            problems["unknown at WHOOP"] += 1
            examples.append((uid, key, "unknown", (updated, deleted, start)))
    return {"checked": checked, "problems": problems, "examples": examples[:5]}


def summarise(title: str, per_day: dict, members: int, days: list) -> dict:
    """Print a phase's per-day table; return the steady-state mean by purpose."""
    print(f"\n{title}: WHOOP calls per member per day (whoopadmin's count, by purpose)")
    purposes = sorted({p for d in days for p in per_day.get(d, {})})
    print("  day        " + " ".join(f"{p:>9}" for p in purposes) + "     total")
    for day in days:
        counts = per_day.get(day, Counter())
        print(
            f"  {day} "
            + " ".join(f"{counts[p] / members:9.2f}" for p in purposes)
            + f" {sum(counts.values()) / members:9.2f}"
        )
    steady_days = days[1:] if len(days) > 1 else days
    mean = Counter()
    for day in steady_days:
        for purpose, n in per_day.get(day, Counter()).items():
            mean[purpose] += n / members / len(steady_days)
    return mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--days", type=int, default=3, help="full days with webhooks working")
    parser.add_argument("--silent-days", type=int, default=3, help="full days with webhooks silent")
    parser.add_argument("--backfill-days", type=int, default=30)
    parser.add_argument("--step-minutes", type=int, default=15, help="simulated clock step")
    parser.add_argument("--seed", type=int, default=1)
    add_service_arguments(parser, redis_db=13)
    args = parser.parse_args()

    import redis
    import time_machine
    from werkzeug.serving import make_server

    from tests.conftest import fresh_pg_database
    from whoopadmin import create_app
    from whoopadmin.connect.models import Link
    from whoopadmin.extensions import db
    from whoopadmin.health import calls
    from whoopadmin.sandbox.server import QuietHandler, SandboxServer

    load_start = load_average()
    wall = time.perf_counter()
    real_now = datetime.now(UTC)
    # Start on the hour: the connect, then the rest of the day before the first full day.
    start = real_now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    traveller_ctx = time_machine.travel(start, tick=True)
    traveller = traveller_ctx.start()
    drop = workdir = redis_client = server = sandbox = None
    try:
        port = free_port()
        sandbox = SandboxServer(
            seed=args.seed, webhook_retry_delays=(0.2, 0.5, 1, 2, 5), access_token_ttl=3600
        ).start()
        whoop_app = sandbox.state.create_app(
            name="budget",
            redirect_uris=["http://127.0.0.1/cb"],
            rate_limit_per_minute=NO_LIMIT,
            rate_limit_per_day=NO_LIMIT,
            approved=True,
        )
        whoop_app.webhook_urls = [f"http://127.0.0.1:{port}/hooks/whoop/push/{whoop_app.client_id}"]
        url, drop = fresh_pg_database(args.database_url)
        workdir = Path(tempfile.mkdtemp(prefix="whoopadmin-budget-"))
        settings = app_settings(
            url,
            args.redis_url,
            workdir,
            **{k.removeprefix("WHOOPADMIN_"): v for k, v in sandbox.env().items()},
        )
        redis_client = redis.Redis.from_url(args.redis_url)
        redis_client.flushdb()
        app = create_app(dict(settings))
        server = make_server("127.0.0.1", port, app, threaded=True, request_handler=QuietHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()

        user_ids = []
        with app.app_context():
            db.create_all()
            connection = add_connection(
                whoop_app.client_id,
                whoop_app.client_secret,
                status="active",
                rate_limit_per_minute=NO_LIMIT,
                rate_limit_per_day=NO_LIMIT,
                approved_by_whoop=True,
                backfill_days=args.backfill_days,
                live_at=datetime.now(UTC),
            )
            connection_id = connection.id
            for _ in range(args.members):
                profile = sandbox.state.create_member(days=args.backfill_days + 5)
                token = sandbox.state.grant_tokens(whoop_app.client_id, profile.user_id)
                link = Link(
                    connection_id=connection_id,
                    whoop_user_id=profile.user_id,
                    reference_id=f"bench-{profile.user_id}",
                    status="active",
                    scopes=token["scope"],
                    access_expires_at=datetime.now(UTC) + timedelta(seconds=token["expires_in"]),
                    connected_at=datetime.now(UTC),
                )
                link.access_token = token["access_token"]
                link.refresh_token = token["refresh_token"]
                db.session.add(link)
                user_ids.append(profile.user_id)
            db.session.commit()
            link_users = dict(db.session.execute(sa.select(Link.id, Link.whoop_user_id)).all())
            db.session.remove()

        members = Members(sandbox.state, user_ids, args.seed)
        sim = Simulation(
            traveller,
            app,
            sandbox,
            whoop_app,
            connection_id,
            members,
            timedelta(minutes=args.step_minutes),
        )
        window_start = sim.now - timedelta(days=args.backfill_days)

        # 1. Connect: each link's backfill, queued as a connect queues it.
        from whoopadmin.jobs import RETRY, enqueue_once

        with app.app_context():
            for link_id in link_users:
                enqueue_once(
                    "backfill",
                    "whoopadmin.sync.jobs.backfill_link",
                    link_id,
                    job_id=f"backfill-{link_id}",
                    retry=RETRY,
                )
        sim.run_jobs()
        backfill = sim.calls()[sim.now.date()]
        backfill_per_member = backfill[calls.BACKFILL] / args.members
        backfill_total_per_member = sum(backfill.values()) / args.members

        # 2. Webhooks working.
        first_day = (sim.now + timedelta(days=1)).replace(hour=0)
        sim.run_until(first_day, active=True)
        webhook_days = [(first_day + timedelta(days=n)).date() for n in range(args.days)]
        sim.run_until(first_day + timedelta(days=args.days), active=True)
        per_day = sim.calls()
        sim.run_until(sim.now + DRAIN, active=False)
        complete_webhooks = check_complete(app, sandbox.state, members, window_start, link_users)
        per_day.update({d: c for d, c in sim.calls().items() if d not in per_day})
        load_webhooks = load_average()

        # 3. Webhooks silent: WHOOP stops sending (the sandbox records them as suppressed).
        for uid in user_ids:
            sandbox.state.set_member_webhooks(uid, False)
        members.actions.clear()
        first_silent = (sim.now + timedelta(days=1)).replace(hour=0)
        sim.run_until(first_silent, active=True)
        silent_days = [(first_silent + timedelta(days=n)).date() for n in range(args.silent_days)]
        sim.run_until(first_silent + timedelta(days=args.silent_days), active=True)
        per_day_silent = sim.calls()
        sim.run_until(sim.now + DRAIN, active=False)
        complete_silent = check_complete(app, sandbox.state, members, window_start, link_users)
        load_end = load_average()
        with app.app_context():
            from rq import Queue

            failed = sum(
                len(Queue(q, connection=redis_client).failed_job_registry)
                for q in ("webhooks", "refresh", "sync", "backfill")
            )
    finally:
        if server is not None:
            server.shutdown()
        if sandbox is not None:
            sandbox.stop()
        traveller_ctx.stop()
        if redis_client is not None:
            redis_client.flushdb()
            redis_client.close()
        if drop is not None:
            drop()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)

    elapsed = time.perf_counter() - wall
    print(
        f"machine: {os.cpu_count()} cores; load average {load_start} (start), "
        f"{load_webhooks} (after webhooks phase), {load_end} (end); {elapsed:.0f} s wall"
    )
    print(
        f"members {args.members}; backfill {args.backfill_days} days; {args.days} days with "
        f"webhooks, {args.silent_days} silent; clock step {args.step_minutes} min; "
        f"access tokens live 3,600 s"
    )
    print("member activity: " + ", ".join(f"{k} {v}" for k, v in sorted(members.done.items())))
    print(
        f"\nbackfill of {args.backfill_days} days on connect: {backfill_per_member:.2f} API "
        f"calls per member ({backfill_total_per_member:.2f} with token refreshes; the "
        "connect itself adds 2: the code exchange and the profile read)"
    )
    steady = summarise("webhooks working", per_day, args.members, webhook_days)
    steady_silent = summarise("webhooks silent", per_day_silent, args.members, silent_days)
    sandbox_days = sim.sandbox_api_calls
    print("\nsandbox check, API requests served per member (token calls not included):")
    for day in webhook_days + silent_days:
        ours = per_day.get(day, per_day_silent.get(day, Counter()))
        api = sum(n for p, n in ours.items() if p != calls.REFRESH)
        print(
            f"  {day}: sandbox {sandbox_days.get(day, 0) / args.members:.2f}, "
            f"whoopadmin {api / args.members:.2f}"
        )
    results = []
    for name, mean, target in (
        ("webhooks working", steady, TARGET_WEBHOOKS),
        ("webhooks silent", steady_silent, TARGET_SILENT),
    ):
        total = sum(mean.values())
        api = total - mean.get(calls.REFRESH, 0)
        per_app = int(DAY_LIMIT // total) if total else 0
        print(
            f"\n{name}, steady state: {total:.2f} calls per member per day ("
            + ", ".join(f"{p} {n:.2f}" for p, n in sorted(mean.items()))
            + f"); API calls alone {api:.2f}"
        )
        print(
            f"  members one app serves within {DAY_LIMIT:,} calls a day: {per_app:,} "
            f"(API calls alone: {int(DAY_LIMIT // api) if api else 0:,}); at that size the "
            f"average minute carries {per_app * total / 1440:.1f} of {MINUTE_LIMIT} calls"
        )
        ok = total <= target
        results.append(ok)
        print(f"  target <= {target} calls per member per day: {'PASS' if ok else 'MISS'}")
    # A new member's backfill within the minute limit.
    print(
        f"\na connect's backfill takes {backfill_total_per_member:.0f} calls: "
        f"{int(MINUTE_LIMIT // max(backfill_total_per_member, 1))} connects a minute at most"
    )
    bad = False
    for name, result in (
        ("webhooks working", complete_webhooks),
        ("webhooks silent", complete_silent),
    ):
        problems = result["problems"]
        print(
            f"completeness after {name}: {result['checked']:,} records checked, "
            + (", ".join(f"{k} {v}" for k, v in problems.items()) or "all complete")
            + f": {'MISMATCH' if problems else 'OK'}"
        )
        for example in result["examples"]:
            print(
                f"    e.g. member {example[0]} {example[1]}: WHOOP {example[2]}, here {example[3]}"
            )
        bad = bad or bool(problems)
    print(f"failed jobs: {failed}")
    if bad or failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
