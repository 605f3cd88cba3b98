"""A worker killed with SIGKILL in the middle of a backfill (the forking worker's job process,
or a ``--no-fork`` worker itself): the job is retried, the data ends complete, nothing is
duplicated."""

import contextlib
import os
import signal
import subprocess
import sys
import time

import psutil
import sqlalchemy as sa
from rq import Queue
from rq.registry import FinishedJobRegistry
from rq.scheduler import RQScheduler

from tests.helpers import cli_env
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


def _wait_until_finished(app, job_id: str) -> None:
    """The retry is scheduled (RETRY: first after 10 s); a worker's scheduler runs it."""
    with app.app_context():
        finished = FinishedJobRegistry("backfill", connection=get_redis(app))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and job_id not in finished.get_job_ids():
            time.sleep(0.5)
        assert job_id in finished.get_job_ids(), "the job was not retried"
        assert Queue("backfill", connection=get_redis(app)).count == 0


def _stored(app) -> list:
    with app.app_context():
        return db.session.execute(sa.select(WhoopRecord.type, WhoopRecord.whoop_id)).all()


def test_killed_backfill_is_retried_to_completion(configured_app, linked, sandbox, member):
    env = cli_env(configured_app)
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
        _wait_until_finished(configured_app, f"backfill-{linked}")
    finally:
        sandbox.state.set_faults({"slow_rate": 0.0})
        worker.terminate()
        worker.wait(20)
    rows = _stored(configured_app)
    assert partial < len(rows)  # the kill really interrupted the backfill
    assert len(rows) == len(set(rows))  # nothing stored twice
    assert set(rows) == _expected(sandbox, member)  # and nothing missing


def test_killed_no_fork_worker_its_backfill_is_retried(configured_app, linked, sandbox, member):
    """Injected: SIGKILL to a ``--no-fork`` worker (it runs the job itself) mid-backfill.

    The whole process group is killed, as a supervisor stopping the worker's unit would:
    RQ's scheduler runs in a child process, which would outlive its worker otherwise.
    """
    env = cli_env(configured_app)
    sandbox.state.set_faults({"slow_rate": 1.0, "slow_seconds": 0.4})
    # The connect queued the backfill; the first worker takes it.
    command = [sys.executable, "-m", "whoopadmin.cli", "worker", "backfill", "--no-fork"]
    first = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        partial = 0
        while time.monotonic() < deadline and not partial:
            time.sleep(0.2)
            partial = len(_stored(configured_app))
        assert partial, "the backfill job never started storing"
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        sandbox.state.set_faults({"slow_rate": 0.0})
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
    partial = len(_stored(configured_app))
    # Nobody will heartbeat the job again. RQ's maintenance (any worker, every few
    # minutes) retries a job whose heartbeat lapsed: ask it now about 5 minutes ahead.
    with configured_app.app_context():
        queue = Queue("backfill", connection=get_redis(configured_app))
        assert queue.started_job_registry.get_job_ids() == [f"backfill-{linked}"]
        queue.started_job_registry.cleanup(time.time() + 300)
        # The retry is scheduled; the dead worker's scheduler still holds the queue's
        # scheduler lock until it expires (61 s): let it have expired.
        queue.connection.delete(RQScheduler.get_locking_key("backfill"))
    second = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_until_finished(configured_app, f"backfill-{linked}")
    finally:
        second.terminate()
        second.wait(20)
    rows = _stored(configured_app)
    assert partial < len(rows)  # the kill really interrupted the backfill
    assert len(rows) == len(set(rows))  # nothing stored twice
    assert set(rows) == _expected(sandbox, member)  # and nothing missing
