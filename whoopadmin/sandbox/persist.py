"""Keep a sandbox's state in a JSON file, so a restart forgets nothing (the demo's sandbox).

``StateFile.load()`` returns the saved state, or a fresh one and a message when the file
cannot be used (it is moved aside, never overwritten). ``Autosaver`` writes the state
every couple of seconds when it changed, and once more when it stops. Writes are atomic
(a temporary file renamed over the old one), so a crash mid-write leaves the previous
snapshot intact. ``whoopadmin sandbox`` on its own stays in memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from .state import SandboxState, SnapshotError


class StateFile:
    """One sandbox state file (``sandbox-state.json`` in the demo's instance folder)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._last: str | None = None
        self._lock = threading.Lock()

    def load(self, **settings: Any) -> tuple[SandboxState, str | None]:
        """The saved state (or a fresh one) and, if the file was unusable, why.

        ``settings`` configure the state as for ``SandboxState(**settings)``.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return SandboxState(**settings), None
        except (OSError, UnicodeDecodeError) as exc:
            return self._start_fresh(settings, f"it cannot be read ({_reason(exc)})")
        try:
            state = SandboxState.from_snapshot(json.loads(text), **settings)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError and SnapshotError too
            return self._start_fresh(settings, f"it is not a usable sandbox state ({_reason(exc)})")
        self._last = text
        return state, None

    def _start_fresh(self, settings: dict, why: str) -> tuple[SandboxState, str]:
        aside = self.path.with_name(f"{self.path.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            os.replace(self.path, aside)
            kept = f"it was moved to {aside}"
        except OSError as exc:
            kept = f"it could not be moved aside ({exc.strerror}) and will be replaced"
        message = (
            f"The sandbox state in {self.path} was not loaded: {why}; {kept}. The sandbox "
            "starts empty, so links made before this run get invalid_grant on their next "
            "refresh and must be connected again."
        )
        return SandboxState(**settings), message

    def save(self, state: SandboxState) -> bool:
        """Write the state if it changed since the last save; True if written."""
        with self._lock:
            with state.lock:  # the records may change under a running sandbox
                text = json.dumps(state.snapshot(), separators=(",", ":"))
            if text == self._last:
                return False
            tmp = self.path.with_name(self.path.name + ".tmp")
            # 0600: the file holds the sandbox apps' client secrets (never usable tokens).
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            self._last = text
            return True


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    if isinstance(exc, SnapshotError | json.JSONDecodeError):
        return str(exc)
    return type(exc).__name__


class Autosaver:
    """Saves a state to its file every ``interval`` seconds when it changed, and at stop."""

    def __init__(self, state: SandboxState, state_file: StateFile, interval: float = 2.0) -> None:
        self.state = state
        self.state_file = state_file
        self.interval = interval
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-autosave", daemon=True)

    def start(self) -> Autosaver:
        """Save now (so the file exists from the start), then keep saving in the background."""
        self.state_file.save(self.state)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.state_file.save(self.state)
            except OSError:
                self.errors += 1  # a full disk must not kill the sandbox; the next try may work

    def stop(self) -> None:
        """Stop the background saves and save one last time."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        with contextlib.suppress(OSError):
            self.state_file.save(self.state)
