"""A worker's job process killed with SIGKILL in the middle of a backfill: the job is retried,
the data ends complete, nothing is duplicated."""

import os
import signal
import subprocess
import sys
import time

import psutil
import sqlalchemy as sa
from rq import Queue
from rq.registry import FinishedJobRegistry

from whoopadmin.extensions import db
from whoopadmin.redisconn import get_redis
from whoopadmin.sync.models import WhoopRecord


def _expected(sandbox, member):
    md = sandbox.state.data(member.user_id)
    return (
        {("cycle", str(r["id"])) for r in md.cycles.records}
        | {("sleep", r["id"]) for r in md.sleeps.records}
        | {("workout", r["id"]) for r in md.workouts.records}
        | {("recovery", r["sleep_id"]) for r in md.recoveries.records}
        | {("body_measurement", str(member.user_id))}
    )


def test_killed_backfill_is_retried_to_completion(configured_app, linked, sandbox, member):
    config = configured_app.config
    env = dict(
        os.environ,
        WHOOPADMIN_INSTANCE_PATH=configured_app.instance_path,
        WHOOPADMIN_DATABASE_URL=config["DATABASE_URL"],
        WHOOPADMIN_REDIS_URL=config["REDIS_URL"],
        WHOOPADMIN_SECRET_KEY=config["SECRET_KEY"],
        WHOOPADMIN_ENCRYPTION_KEYS=config["ENCRYPTION_KEYS"],
        WHOOPADMIN_WHOOP_API_BASE=config["WHOOP_API_BASE"],
        WHOOPADMIN_WHOOP_TOKEN_URL=config["WHOOP_TOKEN_URL"],
        WHOOPADMIN_WHOOP_AUTH_URL=config["WHOOP_AUTH_URL"],
    )
    # Every WHOOP answer takes a while, so the backfill is surely running when killed.
    sandbox.state.set_faults({"slow_rate": 1.0, "slow_seconds": 0.4})
    worker = subprocess.Popen(
        [sys.executable, "-m", "whoopadmin.cli", "worker", "backfill"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        killed = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and killed is None:
            children = psutil.Process(worker.pid).children()
            if children:  # the work-horse: it runs the job
                time.sleep(1.0)  # let it store some records first
                killed = children[0].pid
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.05)
        assert killed is not None, "the backfill job never started"
        with configured_app.app_context():
            partial = db.session.scalar(sa.select(sa.func.count(WhoopRecord.id)))
        sandbox.state.set_faults({"slow_rate": 0.0})
        # The retry is scheduled (RETRY: first after 10 s); the worker's scheduler runs it.
        with configured_app.app_context():
            finished = FinishedJobRegistry("backfill", connection=get_redis(configured_app))
            deadline = time.monotonic() + 60
            while (
                time.monotonic() < deadline and f"backfill-{linked}" not in finished.get_job_ids()
            ):
                time.sleep(0.5)
            assert f"backfill-{linked}" in finished.get_job_ids(), "the job was not retried"
            assert Queue("backfill", connection=get_redis(configured_app)).count == 0
    finally:
        sandbox.state.set_faults({"slow_rate": 0.0})
        worker.terminate()
        worker.wait(20)
    with configured_app.app_context():
        rows = db.session.execute(sa.select(WhoopRecord.type, WhoopRecord.whoop_id)).all()
    assert partial < len(rows)  # the kill really interrupted the backfill
    assert len(rows) == len(set(rows))  # nothing stored twice
    assert set(rows) == _expected(sandbox, member)  # and nothing missing
