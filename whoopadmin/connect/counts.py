"""Links per connection and status, kept by the database itself as the links change.

The support list shows how many links of each status match; counting them on every view
scans the whole ``links`` table (about 100 ms of database time at a million links). So
the database keeps the counts: triggers on ``links`` add a row of ``+n``/``-n`` to
``link_status_counts`` for every insert, delete and change of status or connection, in
the same transaction as the change, whatever made it (the ORM, a bulk ``UPDATE``, raw
SQL, a ``COPY``). A count is the sum of its rows.

Only rows are ever added by the triggers, never updated, so concurrent changes never wait
for one another on a counter row (nor deadlock on two). Reading folds the rows into one
per (connection, status) once more than ``COMPACT_ABOVE`` have gathered.

Batch migrations on SQLite rebuild a table and drop its triggers: a migration that
batch-alters ``links`` must call ``create_triggers`` again (``tests/connect``'s counts
tests check a migrated database).
"""

from __future__ import annotations

import logging

from sqlalchemy import BigInteger, Integer, String, event, func, select, text
from sqlalchemy.orm import Mapped, mapped_column

from whoopadmin.extensions import db

log = logging.getLogger(__name__)

COMPACT_ABOVE = 1000  # rows in the table before a read folds them


class LinkStatusCount(db.Model):
    """``n`` more (or fewer) links of ``status`` on ``connection_id``; counts are sums."""

    __tablename__ = "link_status_counts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(24))
    n: Mapped[int] = mapped_column(BigInteger)


_INSERT = "INSERT INTO link_status_counts (connection_id, status, n)"

POSTGRESQL = [
    # Inserts and deletes: once per statement, grouped (a COPY of a million links adds a
    # handful of rows). Status changes: per row, and only when something counted changed.
    f"""CREATE OR REPLACE FUNCTION link_status_counts_inserted() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN
      {_INSERT} SELECT connection_id, status, count(*) FROM link_status_counts_new
        GROUP BY connection_id, status;
      RETURN NULL;
    END $$""",
    f"""CREATE OR REPLACE FUNCTION link_status_counts_deleted() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN
      {_INSERT} SELECT connection_id, status, -count(*) FROM link_status_counts_old
        GROUP BY connection_id, status;
      RETURN NULL;
    END $$""",
    f"""CREATE OR REPLACE FUNCTION link_status_counts_updated() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN
      {_INSERT} VALUES (OLD.connection_id, OLD.status, -1), (NEW.connection_id, NEW.status, 1);
      RETURN NULL;
    END $$""",
    """CREATE OR REPLACE FUNCTION link_status_counts_truncated() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN
      DELETE FROM link_status_counts;
      RETURN NULL;
    END $$""",
    "DROP TRIGGER IF EXISTS link_status_counts_insert ON links",
    """CREATE TRIGGER link_status_counts_insert AFTER INSERT ON links
    REFERENCING NEW TABLE AS link_status_counts_new
    FOR EACH STATEMENT EXECUTE FUNCTION link_status_counts_inserted()""",
    "DROP TRIGGER IF EXISTS link_status_counts_delete ON links",
    """CREATE TRIGGER link_status_counts_delete AFTER DELETE ON links
    REFERENCING OLD TABLE AS link_status_counts_old
    FOR EACH STATEMENT EXECUTE FUNCTION link_status_counts_deleted()""",
    "DROP TRIGGER IF EXISTS link_status_counts_update ON links",
    """CREATE TRIGGER link_status_counts_update AFTER UPDATE OF status, connection_id ON links
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                       OR OLD.connection_id IS DISTINCT FROM NEW.connection_id)
    EXECUTE FUNCTION link_status_counts_updated()""",
    "DROP TRIGGER IF EXISTS link_status_counts_truncate ON links",
    """CREATE TRIGGER link_status_counts_truncate AFTER TRUNCATE ON links
    FOR EACH STATEMENT EXECUTE FUNCTION link_status_counts_truncated()""",
]

SQLITE = [
    "DROP TRIGGER IF EXISTS link_status_counts_insert",
    f"""CREATE TRIGGER link_status_counts_insert AFTER INSERT ON links BEGIN
      {_INSERT} VALUES (NEW.connection_id, NEW.status, 1);
    END""",
    "DROP TRIGGER IF EXISTS link_status_counts_delete",
    f"""CREATE TRIGGER link_status_counts_delete AFTER DELETE ON links BEGIN
      {_INSERT} VALUES (OLD.connection_id, OLD.status, -1);
    END""",
    "DROP TRIGGER IF EXISTS link_status_counts_update",
    f"""CREATE TRIGGER link_status_counts_update AFTER UPDATE OF status, connection_id ON links
    WHEN OLD.status IS NOT NEW.status OR OLD.connection_id IS NOT NEW.connection_id BEGIN
      {_INSERT} VALUES (OLD.connection_id, OLD.status, -1), (NEW.connection_id, NEW.status, 1);
    END""",
]

_DROP = {
    "postgresql": [
        *(
            f"DROP TRIGGER IF EXISTS link_status_counts_{op} ON links"
            for op in ("insert", "delete", "update", "truncate")
        ),
        *(
            f"DROP FUNCTION IF EXISTS link_status_counts_{op}()"
            for op in ("inserted", "deleted", "updated", "truncated")
        ),
    ],
    "sqlite": [
        f"DROP TRIGGER IF EXISTS link_status_counts_{op}" for op in ("insert", "delete", "update")
    ],
}


def create_triggers(connection) -> None:
    """(Re)create the triggers on ``links`` (a SQLAlchemy or Alembic connection)."""
    statements = POSTGRESQL if connection.dialect.name == "postgresql" else SQLITE
    for statement in statements:
        connection.execute(text(statement))


def drop_triggers(connection) -> None:
    for statement in _DROP.get(connection.dialect.name, _DROP["sqlite"]):
        connection.execute(text(statement))


def recount(connection) -> None:
    """Replace the counts by a count of ``links`` (a migration's start; a repair)."""
    connection.execute(text("DELETE FROM link_status_counts"))
    connection.execute(
        text(
            f"{_INSERT} SELECT connection_id, status, count(*) FROM links "
            "GROUP BY connection_id, status"
        )
    )


@event.listens_for(db.metadata, "after_create")
def _after_create(_metadata, connection, tables=(), **_kw) -> None:
    """``create_all`` (tests, benchmarks): the triggers, once both tables exist."""
    if any(table.name == "link_status_counts" for table in tables):
        create_triggers(connection)


def counts(connection_ids: list[int] | None = None) -> dict[str, int]:
    """Links per status, over all connections or those of ``connection_ids``."""
    query = select(LinkStatusCount.status, func.sum(LinkStatusCount.n), func.count()).group_by(
        LinkStatusCount.status
    )
    if connection_ids is not None:
        query = query.where(LinkStatusCount.connection_id.in_(connection_ids))
    rows = db.session.execute(query).all()
    if connection_ids is None and sum(row[2] for row in rows) > COMPACT_ABOVE:
        compact()
    return {status: int(total) for status, total, _ in rows if total}


def compact() -> None:
    """Fold the rows into one per (connection, status). Best effort: a race only skips it."""
    try:
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Rows another transaction adds meanwhile are not seen, so not deleted; a
                # concurrent compaction deletes (and sums) each row once.
                conn.execute(
                    text(
                        "WITH gone AS (DELETE FROM link_status_counts "
                        "RETURNING connection_id, status, n) "
                        f"{_INSERT} SELECT connection_id, status, sum(n) FROM gone "
                        "GROUP BY connection_id, status HAVING sum(n) <> 0"
                    )
                )
            else:  # one writer at a time; a writer in between fails this transaction
                last = conn.scalar(text("SELECT max(id) FROM link_status_counts"))
                if last is None:
                    return
                conn.execute(
                    text(
                        f"{_INSERT} SELECT connection_id, status, sum(n) FROM link_status_counts "
                        "WHERE id <= :last GROUP BY connection_id, status HAVING sum(n) <> 0"
                    ),
                    {"last": last},
                )
                conn.execute(
                    text("DELETE FROM link_status_counts WHERE id <= :last"), {"last": last}
                )
    except Exception as exc:  # the counts stay right, only unfolded
        log.info("link status counts not compacted: %s", type(exc).__name__)
