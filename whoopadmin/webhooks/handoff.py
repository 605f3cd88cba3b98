"""Queueing stored webhooks in batches, from one background thread per web process.

A member webhook is safe once its row is committed: that is what the 2xx promises.
Queueing its processing only gets a worker to it sooner. Doing that inside the request
built one RQ job per webhook (a Redis hash and a push, a round trip away), which cost a
third of the web processes' time under load (``bench/webhook_ingest.py``). Instead the
request hands the event id to this process's ``Handoff``, and its thread queues what has
gathered every WEBHOOK_QUEUE_DELAY_SECONDS as one ``process_events`` job per batch.

Nothing acknowledged depends on this memory: an id that never reaches Redis (Redis down,
the process killed) leaves its event ``received``, and the sweeper queues it.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref

from flask import Flask

log = logging.getLogger(__name__)

BATCH = 200  # event ids per job at most
_all: weakref.WeakSet[Handoff] = weakref.WeakSet()


class Handoff:
    """Event ids waiting to be queued, and the thread that queues them."""

    def __init__(self, app: Flask, delay: float):
        self.app, self.delay = app, delay
        self._reset()
        _all.add(self)

    def _reset(self) -> None:
        # Also in a forked child: the parent's lock may have been held, its thread is gone.
        self._wake = threading.Condition()
        self._pending: list[int] = []
        self._queueing = 0  # ids taken by the thread and not yet queued
        self._thread: threading.Thread | None = None

    def add(self, event_id: int) -> None:
        """Queue processing of a stored event soon (within ``delay`` plus a round trip)."""
        with self._wake:
            self._pending.append(event_id)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="whoopadmin-webhook-handoff", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every id handed over so far has been queued (or given up on)."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._pending and not self._queueing, timeout)

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._pending)
            time.sleep(self.delay)  # let a batch gather
            with self._wake:
                batch, self._pending = self._pending, []
                self._queueing = len(batch)
            try:
                self._queue(batch)
            finally:
                with self._wake:
                    self._queueing = 0
                    self._wake.notify_all()

    def _queue(self, batch: list[int]) -> None:
        from whoopadmin.jobs import get_queue

        try:
            queue = get_queue("webhooks", self.app)
            with queue.connection.pipeline() as pipe:  # one round trip for the whole batch
                for start in range(0, len(batch), BATCH):
                    queue.enqueue_call(
                        "whoopadmin.webhooks.jobs.process_events",
                        args=(batch[start : start + BATCH],),
                        pipeline=pipe,
                    )
                pipe.execute()
        except Exception as exc:  # stored already: the sweeper queues them later
            log.warning("%d webhooks stored, not queued: %s", len(batch), type(exc).__name__)


def handoff_for(app: Flask) -> Handoff:
    """This app's handoff (one per app and process)."""
    handoff = app.extensions.get("whoopadmin.webhook_handoff")
    if handoff is None:
        delay = float(app.config["WEBHOOK_QUEUE_DELAY_SECONDS"])
        handoff = app.extensions.setdefault("whoopadmin.webhook_handoff", Handoff(app, delay))
    return handoff


def flush_all(timeout: float = 10.0) -> None:
    """Queue what every handoff in this process holds (at exit, and for tests)."""
    for handoff in list(_all):
        handoff.flush(timeout)


def _after_fork() -> None:
    for handoff in list(_all):
        handoff._reset()


os.register_at_fork(after_in_child=_after_fork)
atexit.register(flush_all, 5.0)
