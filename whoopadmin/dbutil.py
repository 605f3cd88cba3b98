"""Bulk upserts that work on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from whoopadmin.extensions import db


def insert_for(dialect: str):
    """The ``insert`` construct of backend ``dialect``, which has ``on_conflict_do_*``."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def dialect_insert():
    """The ``insert`` construct of the session's backend."""
    return insert_for(db.session.get_bind().dialect.name)


def upsert(
    model: type,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    update: Sequence[str],
    where_changed: str | None = None,
) -> None:
    """Insert ``rows``; on a conflict on ``keys``, overwrite the ``update`` columns.

    ``where_changed`` names a column: a conflicting row is then only overwritten when
    that column differs, so re-syncing unchanged data writes nothing. Of rows with the
    same key in one call, the last wins.

    Every row must have the same keys. On PostgreSQL the rows are COPYed into a
    temporary table and upserted from there by one statement (``_copy_upsert``). On
    SQLite they go to one single-row statement as an ``executemany``. Either statement
    is built and compiled once and then cached: a multi-row ``VALUES`` compiled afresh
    for every call took several times longer than storing the rows (bench/backfill.py).
    """
    if not rows:
        return
    table, columns = model.__table__, tuple(rows[0])
    shape = (tuple(keys), tuple(update), where_changed)
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        _copy_upsert(connection, table, columns, rows, shape)
        return
    stmt = _upsert_statement(table, connection.dialect.name, *shape)
    db.session.execute(stmt, list(rows))


def _on_conflict(stmt: Insert, table: Table, keys, update, where_changed) -> Insert:
    where = None
    if where_changed is not None:
        where = table.c[where_changed].is_distinct_from(stmt.excluded[where_changed])
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: stmt.excluded[name] for name in update},
        where=where,
    )


@lru_cache(maxsize=64)
def _upsert_statement(
    table: Table,
    dialect: str,
    keys: tuple[str, ...],
    update: tuple[str, ...],
    where_changed: str | None,
) -> Insert:
    """The single-row upsert statement for one table and shape, built once."""
    return _on_conflict(insert_for(dialect)(table), table, keys, update, where_changed)


def _copy_upsert(connection, table: Table, columns: tuple[str, ...], rows, shape) -> None:
    """PostgreSQL: COPY the rows into a temporary table, then one INSERT … SELECT from it.

    For a page of indicators this is one round of COPY data and one statement, where an
    ``executemany`` ran the upsert once per row (twice as much time in PostgreSQL) and
    arrays for ``unnest`` were escaped in Python. The staging table belongs to this
    database connection and holds only these columns (no constraints). The upsert
    deletes the rows it takes from it, and PostgreSQL empties it in place at commit
    (``ON COMMIT DELETE ROWS``: no dead rows pile up, no new file per use).
    """
    defaults = _python_defaults(table, columns)
    if defaults:  # what an executemany would have filled in for columns left out
        values = {
            c.name: c.default.arg(None) if c.default.is_callable else c.default.arg
            for c in defaults
        }
        rows = [{**values, **row} for row in rows]
        columns += tuple(values)
    stage, stmt = _copy_statements(table, columns, *shape)
    keys = shape[0]
    if len(rows) > 1:  # one statement may not change a row twice: the last one wins
        rows = list({tuple(row[key] for key in keys): row for row in rows}.values())
    processors = [table.c[name].type._cached_bind_processor(connection.dialect) for name in columns]
    driver = connection.connection.driver_connection
    with driver.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "
            f"SELECT {', '.join(_quoted(c) for c in columns)} FROM {table.name} WITH NO DATA"
        )
        with cursor.copy(f"COPY {stage} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(
                    [
                        value if process is None or value is None else process(value)
                        for value, process in zip(
                            [row[name] for name in columns], processors, strict=True
                        )
                    ]
                )
    connection.execute(stmt)


@lru_cache(maxsize=64)
def _python_defaults(table: Table, columns: tuple[str, ...]) -> list:
    return [
        c
        for c in table.c
        if c.name not in columns and c.default is not None and not c.default.is_sequence
    ]


def _quoted(name: str) -> str:
    return f'"{name}"'


@lru_cache(maxsize=64)
def _copy_statements(
    table: Table,
    columns: tuple[str, ...],
    keys: tuple[str, ...],
    update: tuple[str, ...],
    where_changed: str | None,
) -> tuple[str, Insert]:
    """The staging table's name and the upsert from it, for one table and shape."""
    import hashlib

    from sqlalchemy import column, delete, select
    from sqlalchemy import table as table_clause

    shape = hashlib.sha1(repr(columns).encode()).hexdigest()[:8]
    stage = f"whoopadmin_stage_{table.name}_{shape}"
    source = table_clause(stage, *(column(name) for name in columns))
    taken = delete(source).returning(*source.c).cte("taken")
    stmt = insert_for("postgresql")(table).from_select(
        list(columns), select(*(taken.c[name] for name in columns))
    )
    return stage, _on_conflict(stmt, table, keys, update, where_changed)


@event.listens_for(Session, "after_begin")
def _relax_durability(session: Session, _transaction, connection) -> None:
    if session.info.get("relaxed") and connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL synchronous_commit = off")


@contextmanager
def relaxed_durability(relaxed: bool = True) -> Iterator[None]:
    """Commits in this block do not wait for the disk (PostgreSQL ``synchronous_commit``).

    A database crash may then lose the last fraction of a second of them, but never
    corrupts anything. Only for work that is simply done again when its result is
    missing (processing a stored webhook: the event stays ``received`` and is swept up
    again). ``relaxed_durability(False)`` inside it restores waiting for the disk: token
    refreshes use it, since a lost new refresh token would end the link.
    """
    session = db.session()
    session.rollback()  # the setting applies from the next transaction on
    before = session.info.get("relaxed", False)
    session.info["relaxed"] = relaxed
    try:
        yield
    finally:
        session.rollback()
        session.info["relaxed"] = before


@contextmanager
def kept_across_commits() -> Iterator[None]:
    """Do not expire loaded rows on commit while this block runs.

    A sync commits once a page, and expiring the link each time cost a query a page (and
    one per sync-run record) to load it again. The sync only reads the link's fixed
    columns (id, connection, WHOOP user); its tokens and status come from ``LinkTokens``,
    which re-reads the link before every request, so nothing stale is ever used.
    """
    session = db.session()
    expire = session.expire_on_commit
    session.expire_on_commit = False
    try:
        yield
    finally:
        session.expire_on_commit = expire
