"""The connect tests use the shared fixtures in tests/conftest.py, plus these."""

from __future__ import annotations

import pytest

from tests.connect.support import add_destination


@pytest.fixture
def destination(configured_app, connection_id):
    """A destination on the connection that wants every lifecycle event."""
    return add_destination(configured_app, connection_id)
