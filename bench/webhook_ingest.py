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
import statistics
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


def load() -> str:
    """The 1-minute load average (the machine is shared: every figure carries it)."""
    return f"{os.getloadavg()[0]:.1f}"


LUA = r"""
-- One wrk thread per connection, so each thread's answers come in the order of its
-- requests: the trace id of every 2xx is known (``acked``), and written out by done().
-- Thread k sends lines k, k + THREADS, ... of REQUESTS: no line is sent twice.
local threads = {}
local next_offset = 0
local lines = {}
local position = 1
local current = nil
acked = {}
spare = 0
function setup(thread)
  thread:set("thread_offset", next_offset)
  next_offset = next_offset + 1
  table.insert(threads, thread)
end
function init(args)
  local offset = tonumber(thread_offset)
  local i = 0
  for line in io.lines(REQUESTS) do
    if i % THREADS == offset then
      lines[#lines + 1] = line
    end
    i = i + 1
  end
end
function request()
  local line = lines[position]
  position = position + 1
  if line == nil then
    current = nil
    spare = spare + 1
    return wrk.format("GET", "/healthz")
  end
  local ts, sig, trace, body = line:match("^(%d+)\t([^\t]+)\t([^\t]+)\t(.*)$")
  current = trace
  return wrk.format("POST", PATH, {
    ["Host"] = HOST,
    ["Content-Type"] = "application/json",
    ["X-WHOOP-Signature-Timestamp"] = ts,
    ["X-WHOOP-Signature"] = sig,
  }, body)
end
function response(status, headers, body)
  if current ~= nil and status >= 200 and status < 300 then
    acked[#acked + 1] = current
  end
  current = nil
end
function done(summary, latency, requests)
  local out = io.open(ACKED, "w")
  local unused = 0
  for _, thread in ipairs(threads) do
    for _, trace in ipairs(thread:get("acked")) do
      out:write(trace, "\n")
    end
    unused = unused + thread:get("spare")
  end
  out:close()
  io.write(string.format("spare requests: %d\n", unused))
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
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--runs", type=int, default=3, help="runs per level (the median counts)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=16)
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

        # Pre-sign enough distinct webhooks for a run (wrk must not sign in Lua), right
        # before it: a signature's timestamp is accepted for 5 minutes only, and the whole
        # benchmark takes longer (signed all at once, the last level's webhooks were
        # refused as stale: 401s, not ingest).
        per_run = args.seconds * 5000
        slices = len(args.concurrency) * args.runs + 1  # + the warm-up

        def sign(n: int, count: int) -> None:
            stamp = str(int(time.time() * 1000))
            with (workdir / f"run{n}.tsv").open("w") as out:
                for _ in range(count):
                    trace = uuid.uuid4().hex
                    body = json.dumps(
                        {
                            "user_id": user_id,
                            "id": str(uuid.uuid4()),
                            "type": "sleep.deleted",
                            "trace_id": trace,
                        }
                    )
                    signature = whoop_signature(secret, stamp, body.encode())
                    out.write(f"{stamp}\t{signature}\t{trace}\t{body}\n")

        server, port = start_gunicorn(settings, args.workers, args.threads)
        env = settings_env(settings)
        host, path = "whoop.bench.test", "/hooks/whoop/push"
        print(
            f"machine: {os.cpu_count()} cores, load average {load()}; gunicorn {args.workers} "
            f"workers x {args.threads} threads; {args.seconds} s per run, {args.runs} runs "
            "per level; wrk: one thread per connection"
        )
        print(
            f"{'concurrency':>11} {'run':>4} {'webhooks/s':>11} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'healthz/s':>10} {'hz p99':>7} {'ratio':>6} {'app CPU ms/webhook':>19} "
            f"{'ms/healthz':>11} {'load':>5}"
        )
        workers = child_pids(server.pid)
        acked_files: list[Path] = []

        def run_wrk(command: list[str]) -> tuple[dict, float]:
            """wrk's figures, and the gunicorn workers' CPU ms per answered request."""
            before = cpu_seconds(workers)
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            result = parse_wrk(output)
            spare = re.search(r"spare requests: (\d+)", output)
            result["spare"] = int(spare.group(1)) if spare else 0
            return result, (cpu_seconds(workers) - before) * 1000 / max(result["total"], 1)

        def run_pair(n: int, concurrency: int, seconds: int):
            """Webhooks, then /healthz, at ``concurrency`` for ``seconds`` each."""
            sign(n, per_run if n < slices - 1 else WARMUP_SECONDS * 5000)
            script = workdir / f"run{n}.lua"
            acked = workdir / f"acked{n}.txt"
            acked_files.append(acked)
            script.write_text(
                f'REQUESTS = "{workdir / f"run{n}.tsv"}"\nACKED = "{acked}"\nPATH = "{path}"\n'
                f'HOST = "{host}"\nTHREADS = {concurrency}\n' + LUA
            )
            common = ["wrk", f"-t{concurrency}", f"-c{concurrency}", f"-d{seconds}s", "--latency"]
            hooks, hook_cpu = run_wrk(
                [*common, "-s", str(script), f"http://127.0.0.1:{port}{path}"]
            )
            base, base_cpu = run_wrk([*common, f"http://127.0.0.1:{port}/healthz"])
            return hooks, hook_cpu, base, base_cpu

        # Warm up first (connection pools, prepared statements, caches, the queueing
        # thread): untimed, at the highest concurrency; its webhooks are checked too.
        run_pair(slices - 1, max(args.concurrency), WARMUP_SECONDS)
        medians = []
        n = 0
        for concurrency in args.concurrency:
            runs = []
            for run in range(args.runs):
                hooks, hook_cpu, base, base_cpu = run_pair(n, concurrency, args.seconds)
                n += 1
                ratio = hooks["rps"] / base["rps"]
                runs.append(
                    dict(
                        hooks,
                        ratio=ratio,
                        base=base["rps"],
                        bp99=base["p99"],
                        cpu=hook_cpu,
                        bcpu=base_cpu,
                    )
                )
                print(
                    f"{concurrency:>11} {run + 1:>4} {hooks['rps']:>11.0f} {hooks['p50']:>8.1f} "
                    f"{hooks['p99']:>8.1f} {base['rps']:>10.0f} {base['p99']:>7.1f} {ratio:>6.2f} "
                    f"{hook_cpu:>19.2f} {base_cpu:>11.2f} {load():>5}"
                    + (f"  ({hooks['non2xx']} non-2xx)" if hooks["non2xx"] else "")
                    + (f"  (ran out: {hooks['spare']} /healthz)" if hooks["spare"] else "")
                )
            median = {
                key: statistics.median(r[key] for r in runs)
                for key in ("rps", "p50", "p99", "base", "bp99", "ratio", "cpu", "bcpu")
            }
            medians.append(dict(median, concurrency=concurrency))
            print(
                f"{concurrency:>11} {'med':>4} {median['rps']:>11.0f} {median['p50']:>8.1f} "
                f"{median['p99']:>8.1f} {median['base']:>10.0f} {median['bp99']:>7.1f} "
                f"{median['ratio']:>6.2f} "
                f"{median['cpu']:>19.2f} {median['bcpu']:>11.2f}"
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
            stored_ids = set(conn.execute(sa.select(events.c.trace_id)).scalars())
        acked_ids: list[str] = []
        for acked in acked_files:
            acked_ids += acked.read_text().split()
        lost = set(acked_ids) - stored_ids
        twice = len(acked_ids) - len(set(acked_ids))  # an id acknowledged twice: sent twice
        stored_ok = not lost and not twice and stored == len(stored_ids)
        print(
            f"acknowledged {len(acked_ids)} trace ids, each checked: {len(lost)} not stored "
            f"{sorted(lost)[:5] if lost else ''}; stored {stored} rows, {len(stored_ids)} "
            f"distinct trace ids: {'OK (none lost, none twice)' if stored_ok else 'MISMATCH'}"
        )

        processed_ok = True
        if args.process_workers:
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
                f"processed {processed} of {stored} with {args.process_workers} workers in "
                f"{elapsed:.1f} s ({processed / elapsed:.0f}/s); processed exactly once: {once}: "
                f"{'OK' if processed_ok else 'MISMATCH'}"
            )
        engine.dispose()
        targets = [("0 lost (per trace id), 0 stored twice", stored_ok)]
        if args.process_workers:
            targets.append(("0 processed twice, none left", processed_ok))
        for m in medians:
            c = m["concurrency"]
            targets += [
                (f"c={c}: median webhooks/s >= 1000 ({m['rps']:.0f})", m["rps"] >= 1000),
                (f"c={c}: median p99 <= 50 ms ({m['p99']:.1f})", m["p99"] <= 50),
                (f"c={c}: median ratio to /healthz >= 0.70 ({m['ratio']:.2f})", m["ratio"] >= 0.7),
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
