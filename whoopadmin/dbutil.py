"""Bulk upserts that work on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.sql.dml import Insert

from whoopadmin.extensions import db


def dialect_insert():
    """The backend's ``insert`` construct, which has ``on_conflict_do_update``."""
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


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
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table)
    where = None
    if where_changed is not None:
        where = table.c[where_changed].is_distinct_from(stmt.excluded[where_changed])
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: stmt.excluded[name] for name in update},
        where=where,
    )
