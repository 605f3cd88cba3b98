"""The real ``whoopadmin demo`` as a child process, for the tests that need all of it.

It runs on the embedded defaults in a temporary instance folder (embedded Redis always;
PostgreSQL instead of SQLite when WHOOPADMIN_TEST_DATABASE_URL is set), on ports the
operating system picks (``--port 0`` …), read back from the banner.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

STARTUP_SECONDS = 90  # a loaded CI machine: create_app, migrations, three processes


def clean_env(instance: Path, database_url: str | None = None) -> dict[str, str]:
    """This environment without any WHOOPADMIN_* setting, on ``instance``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHOOPADMIN_")}
    env["WHOOPADMIN_INSTANCE_PATH"] = str(instance)
    if database_url:
        env["WHOOPADMIN_DATABASE_URL"] = database_url
    return env


def whoopadmin(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None, timeout=120
) -> subprocess.CompletedProcess:
    """Run a ``whoopadmin`` command to completion."""
    return subprocess.run(
        [sys.executable, "-m", "whoopadmin.cli", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def http_status(url: str, timeout: float = 5) -> int | None:
    """The status of a GET, or None if nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


@dataclass
class DemoProcess:
    """One ``whoopadmin demo`` run; ``start()`` again after ``stop()`` restarts it."""

    folder: Path
    database_url: str | None = None
    ports: dict[str, int] = field(
        default_factory=lambda: {"port": 0, "sandbox-port": 0, "dns-port": 0, "receiver-port": 0}
    )
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen | None = None
    runs: int = 0

    @property
    def instance(self) -> Path:
        return self.folder / "instance"

    @property
    def env(self) -> dict[str, str]:
        return clean_env(self.instance, self.database_url)

    @property
    def stdout_path(self) -> Path:
        return self.folder / f"demo-{self.runs}.out"

    @property
    def stderr_path(self) -> Path:
        return self.folder / f"demo-{self.runs}.err"

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def wait_for_output(self, pattern: str, timeout: float = 30) -> str:
        """Wait until the console shows a line matching ``pattern`` (a regex); return it."""
        deadline = time.monotonic() + timeout
        while (found := re.search(pattern, self.output(), re.M)) is None:
            assert time.monotonic() < deadline, f"no {pattern!r} in:\n{self.output()[-2000:]}"
            time.sleep(0.2)
        return found[0]

    def errors(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.ports['port']}"

    @property
    def sandbox(self) -> str:
        return f"http://127.0.0.1:{self.ports['sandbox-port']}"

    @property
    def receiver(self) -> str:
        return f"http://127.0.0.1:{self.ports['receiver-port']}"

    def public(self, hostname: str) -> str:
        return f"http://{hostname}:{self.ports['port']}"

    def start(self) -> DemoProcess:
        """Start the demo and wait until its banner is out and /readyz answers 200."""
        self.runs += 1
        args = [arg for name, port in self.ports.items() for arg in (f"--{name}", str(port))]
        args += self.extra_args
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            # Its own session: the test sends the Ctrl-C a terminal would send its group.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "whoopadmin.cli", "demo", *args],
                env=self.env,
                cwd=self.folder,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while "Press Ctrl-C" not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(
                    f"the demo did not start:\n{self.output()[-3000:]}\n{self.errors()[-3000:]}"
                )
            time.sleep(0.1)
        banner = self.output()
        self.ports = {
            "port": int(re.search(r"admin pages on http://127\.0\.0\.1:(\d+)/", banner)[1]),
            "sandbox-port": int(
                re.search(r"WHOOP sandbox on http://127\.0\.0\.1:(\d+)", banner)[1]
            ),
            "dns-port": int(re.search(r"Demo DNS on 127\.0\.0\.1:(\d+)", banner)[1]),
            "receiver-port": int(re.search(r"inbox http://127\.0\.0\.1:(\d+)/", banner)[1]),
        }
        while http_status(f"{self.admin}/readyz") != 200:
            assert time.monotonic() < deadline, "/readyz never answered 200"
            time.sleep(0.2)
        return self

    def children(self) -> dict[str, psutil.Process]:
        """The demo's worker and cron processes, by name."""
        out = {}
        for child in psutil.Process(self.process.pid).children():
            cmdline = " ".join(child.cmdline())
            for name in ("worker", "cron"):
                if cmdline.endswith(f"whoopadmin.cli {name}"):
                    out[name] = child
        return out

    def stop(self, signum: int = signal.SIGINT, timeout: float = 30) -> float:
        """Send ``signum`` as a terminal's Ctrl-C would; return how long it took to exit."""
        started = time.monotonic()
        os.killpg(self.process.pid, signum)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the demo did not stop within {timeout} s") from None
        return time.monotonic() - started

    def kill(self) -> None:
        """Kill the demo and every process it started (clean-up after a failure)."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(psutil.NoSuchProcess):
            family = psutil.Process(self.process.pid).children(recursive=True)
            for child in family:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        """Another ``whoopadmin`` command in the same folder, as a user would type it."""
        return whoopadmin(list(args), self.env, self.folder, stdin)
