"""Bulk upserts that work on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from whoopadmin.extensions import db

# SQLite allows 32,766 bound variables per statement; stay well below on both backends.
MAX_VARIABLES = 30_000


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
    """
    if not rows:
        return
    insert = dialect_insert()
    table = model.__table__
    per_statement = max(1, MAX_VARIABLES // max(1, len(rows[0])))
    for start in range(0, len(rows), per_statement):
        stmt = insert(table).values(list(rows[start : start + per_statement]))
        where = None
        if where_changed is not None:
            where = table.c[where_changed].is_distinct_from(stmt.excluded[where_changed])
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: stmt.excluded[name] for name in update},
            where=where,
        )
        db.session.execute(stmt)
