"""Fixtures for the demo's tests: a database for a demo child process."""

from __future__ import annotations

import pytest

from tests.conftest import PG_URL, fresh_pg_database


@pytest.fixture
def demo_database_url():
    """None (the demo's embedded SQLite), or a fresh PostgreSQL database in the PG run."""
    url, drop = fresh_pg_database(PG_URL) if PG_URL else (None, lambda: None)
    try:
        yield url
    finally:
        drop()
