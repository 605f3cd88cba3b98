"""Webhook ingest benchmark: gunicorn serving whoopadmin on PostgreSQL + Redis, wrk on loopback.

Sends correctly signed WHOOP webhooks (every one with its own trace id) to the
connection's webhook URL (``https://<sub>/hooks/whoop/push``, by Host header) at rising
concurrency, then the same load on a trivial endpoint (``/healthz``) of the same server as
the baseline, and prints requests/s, p50/p99 latency and the ratio. Then it checks that
every acknowledged webhook was stored exactly once, runs worker processes until the queue
is empty, and checks that every stored webhook was processed exactly once. The events are
``sleep.deleted`` for objects never stored, so processing needs no WHOOP: what is measured
is whoopadmin's own queueing and bookkeeping.

    python bench/webhook_ingest.py [--seconds 30] [--concurrency 16 32 64]

Needs PostgreSQL (a fresh database is created and dropped), a Redis server, gunicorn (a
dependency) and ``wrk`` (Debian package). Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis
import sqlalchemy as sa
from benchlib import (  # noqa: E402
    ROOT,
    add_connection,
    add_service_arguments,
    app_settings,
    child_pids,
    cpu_seconds,
    settings_env,
    start_gunicorn,
)

sys.path.insert(0, str(ROOT))

WARMUP_SECONDS = 3

LUA = r"""
-- Each wrk thread takes every THREADS-th line from its own offset: no line is sent twice.
local lines = {}
local position = 0
local stride = 1
local next_offset = 0
function setup(thread)
  thread:set("thread_offset", next_offset)
  next_offset = next_offset + 1
end
function init(args)
  for line in io.lines(REQUESTS) do
    lines[#lines + 1] = line
  end
  position = tonumber(thread_offset) + 1
  stride = THREADS
end
function request()
  local line = lines[position]
  position = position + stride
  if line == nil then
    return wrk.format("GET", "/healthz")
  end
  local ts, sig, body = line:match("^(%d+)\t([^\t]+)\t(.*)$")
  return wrk.format("POST", PATH, {
    ["Host"] = HOST,
    ["Content-Type"] = "application/json",
    ["X-WHOOP-Signature-Timestamp"] = ts,
    ["X-WHOOP-Signature"] = sig,
  }, body)
end
"""


def parse_wrk(output: str) -> dict:
    """Requests/s, p50/p99 latency (ms), total and non-2xx counts from ``wrk --latency``."""

    def ms(text: str) -> float:
        value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = ms(re.search(r"\s50%\s+(\S+)", output).group(1))
    p99 = ms(re.search(r"\s99%\s+(\S+)", output).group(1))
    total = int(re.search(r"(\d+) requests in", output).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": rps,
        "p50": p50,
        "p99": p99,
        "total": total,
        "non2xx": int(bad.group(1)) if bad else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--process-workers",
        type=int,
        default=2,
        help="`whoopadmin worker --no-fork webhooks` processes for the processed-once check "
        "(0: skip it, e.g. while trying server settings)",
    )
    add_service_arguments(parser, redis_db=10)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")

    from tests.conftest import fresh_pg_database
    from whoopadmin import create_app
    from whoopadmin.connect.models import Link
    from whoopadmin.extensions import db
    from whoopadmin.webhooks.models import WebhookEvent
    from whoopadmin.webhooks.signatures import whoop_signature

    url, drop = fresh_pg_database(args.database_url)
    workdir = Path(tempfile.mkdtemp(prefix="whoopadmin-bench-"))
    settings = app_settings(url, args.redis_url, workdir)
    server = None
    try:
        app = create_app(dict(settings))
        secret, client_id, user_id = "bench-client-secret-0001", "bench-client", 424242
        with app.app_context():
            db.create_all()
            connection = add_connection(client_id, secret)
            link = Link(connection_id=connection.id, whoop_user_id=user_id, reference_id="bench")
            db.session.add(link)
            db.session.commit()
            db.engine.dispose()

        redis.Redis.from_url(args.redis_url).flushdb()

        # Pre-sign enough distinct webhooks for every run (wrk must not sign in Lua).
        per_run = args.seconds * 6000
        requests_file = workdir / "requests.tsv"
        stamp = str(int(time.time() * 1000))
        with requests_file.open("w") as out:
            for _ in range(per_run * (len(args.concurrency) + 1)):  # + the warm-up
                body = json.dumps(
                    {
                        "user_id": user_id,
                        "id": str(uuid.uuid4()),
                        "type": "sleep.deleted",
                        "trace_id": uuid.uuid4().hex,
                    }
                )
                signature = whoop_signature(secret, stamp, body.encode())
                out.write(f"{stamp}\t{signature}\t{body}\n")

        server, port = start_gunicorn(settings, args.workers, args.threads)
        env = settings_env(settings)
        host, path = "whoop.bench.test", "/hooks/whoop/push"
        print(
            f"machine: {os.cpu_count()} cores; gunicorn {args.workers} workers x "
            f"{args.threads} threads; {args.seconds} s per run"
        )
        print(
            f"{'concurrency':>11} {'webhooks/s':>11} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'healthz/s':>10} {'ratio':>6} {'app CPU ms/webhook':>19} {'ms/healthz':>11}"
        )
        workers = child_pids(server.pid)

        def run_wrk(command: list[str]) -> tuple[dict, float]:
            """wrk's figures, and the gunicorn workers' CPU ms per answered request."""
            before = cpu_seconds(workers)
            result = parse_wrk(
                subprocess.run(command, capture_output=True, text=True, check=True).stdout
            )
            return result, (cpu_seconds(workers) - before) * 1000 / max(result["total"], 1)

        def run_pair(n: int, concurrency: int, seconds: int):
            """Webhooks, then /healthz, at ``concurrency`` for ``seconds`` each."""
            # Each run reads its own slice of the signed requests.
            slice_file = workdir / f"run{n}.tsv"
            with requests_file.open() as src, slice_file.open("w") as dst:
                for i, line in enumerate(src):
                    if n * per_run <= i < (n + 1) * per_run:
                        dst.write(line)
            script = workdir / f"run{n}.lua"
            script.write_text(
                f'REQUESTS = "{slice_file}"\nPATH = "{path}"\nHOST = "{host}"\nTHREADS = 2\n' + LUA
            )
            common = ["wrk", "-t2", f"-c{concurrency}", f"-d{seconds}s", "--latency"]
            hooks, hook_cpu = run_wrk(
                [*common, "-s", str(script), f"http://127.0.0.1:{port}{path}"]
            )
            base, base_cpu = run_wrk([*common, f"http://127.0.0.1:{port}/healthz"])
            return hooks, hook_cpu, base, base_cpu

        # Warm up first (connection pools, prepared statements, caches, the queueing
        # thread): untimed, at the highest concurrency; its webhooks are checked too.
        warm, *_ = run_pair(len(args.concurrency), max(args.concurrency), WARMUP_SECONDS)
        accepted = warm["total"] - warm["non2xx"]
        results = []
        for n, concurrency in enumerate(args.concurrency):
            hooks, hook_cpu, base, base_cpu = run_pair(n, concurrency, args.seconds)
            accepted += hooks["total"] - hooks["non2xx"]
            ratio = hooks["rps"] / base["rps"]
            results.append(dict(hooks, ratio=ratio))
            print(
                f"{concurrency:>11} {hooks['rps']:>11.0f} {hooks['p50']:>8.1f} "
                f"{hooks['p99']:>8.1f} {base['rps']:>10.0f} {ratio:>6.2f} "
                f"{hook_cpu:>19.2f} {base_cpu:>11.2f}"
                + (f"  ({hooks['non2xx']} non-2xx)" if hooks["non2xx"] else "")
            )
        server.terminate()
        server.wait(20)
        server = None
        engine = sa.create_engine(
            url.replace("postgresql://", "postgresql+psycopg://", 1)
            if url.startswith("postgresql://")
            else url
        )
        events = WebhookEvent.__table__

        def count(*where) -> int:
            with engine.connect() as conn:
                return conn.execute(
                    sa.select(sa.func.count()).select_from(events).where(*where)
                ).scalar()

        stored = count()
        with engine.connect() as conn:
            distinct = conn.execute(
                sa.select(sa.func.count(sa.distinct(events.c.trace_id)))
            ).scalar()
        # wrk counts only answers it read before it stopped: a few more may have been stored.
        stored_ok = accepted <= stored == distinct
        print(
            f"acknowledged {accepted}, stored {stored}, distinct trace ids {distinct}: "
            f"{'OK (none lost, none twice)' if stored_ok else 'MISMATCH'}"
        )

        if not args.process_workers:
            engine.dispose()
            return
        started = time.perf_counter()
        log = (workdir / "workers.log").open("w")
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "whoopadmin.cli",
                    "worker",
                    "webhooks",
                    "--burst",
                    "--no-fork",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            for _ in range(args.process_workers)
        ]
        for worker in workers:
            worker.wait()
        log.close()
        if any(worker.returncode for worker in workers):
            print((workdir / "workers.log").read_text()[-3000:])
        elapsed = time.perf_counter() - started
        processed = count(events.c.status == "processed")
        once = count(events.c.status == "processed", events.c.attempts == 1)
        processed_ok = processed == once == stored
        print(
            f"processed {processed} of {stored} with {args.process_workers} worker processes in "
            f"{elapsed:.1f} s ({processed / elapsed:.0f}/s); processed exactly once: {once}: "
            f"{'OK' if processed_ok else 'MISMATCH'}"
        )
        engine.dispose()
        best = max(results, key=lambda r: r["rps"])
        targets = [
            ("webhooks/s >= 1000", best["rps"] >= 1000),
            ("p99 <= 50 ms at that rate", best["p99"] <= 50),
            ("ratio to /healthz >= 0.50", best["ratio"] >= 0.5),
            ("0 lost, 0 stored twice", stored_ok),
            ("0 processed twice, none left", processed_ok),
        ]
        for label, ok in targets:
            print(f"  {'PASS' if ok else 'MISS'}  {label}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(20)
        redis.Redis.from_url(args.redis_url).flushdb()
        drop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
