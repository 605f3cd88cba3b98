"""Small helpers shared by tests."""

import re

import sqlalchemy as sa

from whoopadmin.domains import zone_text as zone  # noqa: F401 - zone files for the DNS server
from whoopadmin.extensions import db


def reset_schema(app) -> None:
    """Give the test an empty schema: create the tables, and empty them on PostgreSQL."""
    with app.app_context():
        db.create_all()
        if db.engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
            with db.engine.begin() as conn:
                conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_from(html: str) -> str:
    """Return the CSRF token embedded in a rendered page."""
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)

