"""Group commit: concurrent member webhooks stored by one statement and one commit.

Every accepted webhook must be durable before its 2xx. Committed one by one, each costs
a round trip, a transaction and a WAL flush of its own; under load those dominate
PostgreSQL's share of the work (``bench/webhook_ingest.py``). So on PostgreSQL each web
process has one ``Committer`` thread with a connection of its own: a request hands it the
row and waits; the thread takes whatever has gathered, inserts it all with one
``INSERT … SELECT FROM unnest(…)``, commits once, and only then wakes each request with
its own row's outcome. A batch never waits for company: while one commits, the next
gathers.

If the batch fails (the statement or the commit), every request in it gets
``StoreFailed`` — none is answered 2xx for a row that may not be there. The caller may
try again (a row that did commit is then found as a redelivery, as WHOOP's own retries
are). SQLite (the embedded default, tests) stores inline, one commit per webhook.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

log = logging.getLogger(__name__)

MAX_BATCH = 500  # rows per statement at most
WAIT_SECONDS = 10.0  # a request gives up (5xx) after this long; WHOOP retries


class StoreFailed(Exception):
    """The batch holding this webhook was not committed; answer 5xx."""


_COLUMNS = (
    ("connection_id", "int4"),
    ("trace_id", "text"),
    ("type", "text"),
    ("whoop_user_id", "int8"),
    ("object_id", "text"),
    ("status", "text"),
    ("result", "text"),
    ("received_at", "timestamptz"),
    ("body", "text"),
)

SQL = f"""
INSERT INTO webhook_events (connection_id, link_id, source, trace_id, type, whoop_user_id,
    object_id, status, attempts, result, received_at, body)
SELECT v.connection_id, l.id, 'member', v.trace_id, v.type, v.whoop_user_id, v.object_id,
    CASE WHEN l.status = 'revoked' THEN 'ignored' ELSE v.status END, 0,
    CASE WHEN l.status = 'revoked' THEN %(ignored)s ELSE v.result END,
    v.received_at, v.body::json
FROM unnest({", ".join(f"%({name})s::{kind}[]" for name, kind in _COLUMNS)})
    AS v({", ".join(name for name, _ in _COLUMNS)})
JOIN links l ON l.connection_id = v.connection_id AND l.whoop_user_id = v.whoop_user_id
ON CONFLICT (connection_id, trace_id) DO NOTHING
RETURNING connection_id, trace_id, id, status
"""


class _Batch:
    __slots__ = ("rows", "done", "results", "error")

    def __init__(self):
        self.rows: list[dict] = []
        self.done = threading.Event()
        self.results: dict[tuple[int, str], tuple[int, str]] = {}
        self.error: BaseException | None = None


class Committer:
    """One per web process and database: the thread that stores webhooks in batches."""

    def __init__(self, engine, ignored_result: str):
        self.engine, self.ignored = engine, ignored_result
        self._lock = threading.Condition()
        self._batch = _Batch()
        self._thread: threading.Thread | None = None
        self._connection = None  # the pooled connection this thread keeps

    def store(self, row: dict) -> tuple[int, str] | None:
        """Store one webhook's row; (id, status) once committed, None if not inserted
        (no link with that user id, or the trace id is stored already). Raises
        ``StoreFailed`` if its batch was not committed."""
        with self._lock:
            batch = self._batch
            batch.rows.append(row)
            row["batch"] = batch  # moved to the next batch if this one overflows
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="whoopadmin-webhook-commit", daemon=True
                )
                self._thread.start()
            self._lock.notify()
        deadline = time.monotonic() + WAIT_SECONDS
        while True:  # until the batch that holds the row is done
            if not batch.done.wait(max(0.0, deadline - time.monotonic())):
                raise StoreFailed("timed out waiting for the group commit")
            if row["batch"] is batch:
                break
            batch = row["batch"]
        if batch.error is not None or row.get("failed"):
            raise StoreFailed(
                type(batch.error).__name__ if batch.error else "refused"
            ) from batch.error
        if row.get("duplicate"):
            return None  # a redelivery in the same batch: stored once, for the other
        return batch.results.get((row["connection_id"], row["trace_id"]))

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._batch.rows:
                    self._lock.wait()
                batch = self._batch
                if len(batch.rows) > MAX_BATCH:  # the rest waits for the next statement
                    rest = _Batch()
                    rest.rows = batch.rows[MAX_BATCH:]
                    batch.rows = batch.rows[:MAX_BATCH]
                    for moved in rest.rows:  # their requests wait for ``rest`` instead
                        moved["batch"] = rest
                    self._batch = rest
                else:
                    self._batch = _Batch()
            try:
                batch.results = self._store(batch.rows)
            except BaseException as exc:  # every request of the batch answers 5xx
                batch.error = exc
                log.warning("webhook group commit of %d failed: %s", len(batch.rows), exc)
            finally:
                batch.done.set()

    def _store(self, rows: list[dict]) -> dict[tuple[int, str], tuple[int, str]]:
        """Commit the rows; retried once on a fresh connection if a kept one failed (the
        server restarted, say: a row that did commit is then skipped as stored)."""
        reused = self._connection is not None
        try:
            return self._commit(rows)
        except Exception as exc:
            self._drop_connection()
            import psycopg

            if isinstance(exc, psycopg.DataError) and len(rows) > 1:
                # One row PostgreSQL refuses must not fail the others: each on its own.
                log.warning("webhook group commit refused (%s): row by row", exc)
                results, failed = {}, None
                for row in rows:
                    try:
                        results.update(self._commit([row]))
                    except Exception as one:
                        self._drop_connection()
                        row["failed"], failed = True, one
                if failed is not None and all(row.get("failed") for row in rows):
                    raise failed from exc
                return results
            if not reused:
                raise
            log.info("webhook group commit on a kept connection failed (%s): retried", exc)
            return self._commit(rows)

    def _commit(self, rows: list[dict]) -> dict[tuple[int, str], tuple[int, str]]:
        if self._connection is None:
            self._connection = self.engine.raw_connection()
        driver = self._connection.driver_connection
        params: dict = {name: [] for name, _ in _COLUMNS}
        seen = set()
        for row in rows:
            key = (row["connection_id"], row["trace_id"])
            if key in seen:  # the same webhook twice in one batch: the first one is stored
                row["duplicate"] = True
                continue
            seen.add(key)
            for name, _ in _COLUMNS:
                params[name].append(row[name])
        params["ignored"] = self.ignored
        try:
            with driver.cursor() as cursor:
                cursor.execute(SQL, params)
                stored = {(c, t): (i, s) for c, t, i, s in cursor.fetchall()}
            driver.commit()
        except BaseException:
            for row in rows:
                row.pop("duplicate", None)
            raise
        return stored

    def _drop_connection(self) -> None:
        if self._connection is None:
            return
        with contextlib.suppress(Exception):  # already broken
            self._connection.invalidate()
        self._connection = None


_committers: dict[tuple[int, int], Committer] = {}
_committers_lock = threading.Lock()


def committer_for(engine, ignored_result: str) -> Committer:
    """This process's committer for ``engine`` (a forked child makes its own)."""
    key = (os.getpid(), id(engine))
    committer = _committers.get(key)
    if committer is None:
        with _committers_lock:
            committer = _committers.get(key)
            if committer is None:
                committer = _committers[key] = Committer(engine, ignored_result)
    return committer
