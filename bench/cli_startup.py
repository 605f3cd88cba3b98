"""How long `whoopadmin` commands take on the embedded defaults (no database or Redis URL).

Each command runs as a fresh process in a scratch folder with its own instance folder,
several times; the median wall time is printed beside a target. Commands that need
neither the database nor Redis (``--help``, ``keys generate``, ``dns check``) should start
nothing and create nothing; ``users list`` needs the database (and, before issue 16, paid
for starting and stopping an embedded Redis too).

    .venv/bin/python bench/cli_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHOOPADMIN = [sys.executable, "-m", "whoopadmin.cli"]
TARGET_HELP_SECONDS = 1.0


def _env(instance: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHOOPADMIN_")}
    env["WHOOPADMIN_INSTANCE_PATH"] = str(instance)
    return env


def _time(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [*WHOOPADMIN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):  # dns check exits 1 when not verified
        raise RuntimeError(f"{args} failed ({done.returncode}): {done.stderr[-500:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()

    from whoopadmin.domains import DNSServer, zone_text

    zone = zone_text("bench.test", "whoop CNAME edge.bench.test.\nedge A 127.0.0.1")
    commands = {
        "--help": ["--help"],
        "keys generate": ["keys", "generate"],
        "dns check": None,  # filled in once the DNS server has a port
        "users list": ["users", "list"],
    }
    results: dict[str, list[float]] = {}
    with DNSServer({"bench.test": zone}) as dns, tempfile.TemporaryDirectory() as scratch:
        commands["dns check"] = [
            "dns",
            "check",
            "whoop.bench.test",
            "--target",
            "edge.bench.test",
            "--nameserver",
            f"127.0.0.1:{dns.port}",
        ]
        for name, args in commands.items():
            times = []
            for run in range(options.runs):
                cwd = Path(scratch) / f"{name.replace(' ', '-')}-{run}"
                cwd.mkdir()
                times.append(_time(args, cwd, _env(cwd / "instance")))
            results[name] = times
    print(f"whoopadmin on the embedded defaults, {options.runs} runs each (seconds)")
    print(f"{'command':<16} {'median':>7} {'min':>7} {'max':>7}")
    for name, times in results.items():
        print(f"{name:<16} {statistics.median(times):7.2f} {min(times):7.2f} {max(times):7.2f}")
    help_median = statistics.median(results["--help"])
    verdict = "PASS" if help_median < TARGET_HELP_SECONDS else "MISS"
    print(f"target: `whoopadmin --help` under {TARGET_HELP_SECONDS:.0f} s — {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
