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
    that column differs, so re-syncing unchanged data writes nothing.

    Every row must have the same keys. The rows go to one single-row statement as an
    ``executemany``: its SQL is compiled once and cached, and the driver sends all the
    rows in one go (psycopg's pipeline mode, sqlite3's ``executemany``). A multi-row
    ``VALUES`` is compiled afresh for every call: for a page of indicators that took
    several times longer than storing them (see bench/backfill.py).
    """
    if not rows:
        return
    dialect = db.session.get_bind().dialect.name
    stmt = _upsert_statement(model.__table__, dialect, tuple(keys), tuple(update), where_changed)
    db.session.execute(stmt, list(rows))


@lru_cache(maxsize=64)
def _upsert_statement(
    table: Table,
    dialect: str,
    keys: tuple[str, ...],
    update: tuple[str, ...],
    where_changed: str | None,
) -> Insert:
    """The upsert statement for one table and shape, built once and then reused."""
    stmt = insert_for(dialect)(table)
    where = None
    if where_changed is not None:
        where = table.c[where_changed].is_distinct_from(stmt.excluded[where_changed])
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: stmt.excluded[name] for name in update},
        where=where,
    )


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
