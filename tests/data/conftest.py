"""Fixtures for the data API tests: a sandbox member connected and backfilled, keys."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.api.conftest import api, api_key, new_key  # noqa: F401 - fixtures used here
from tests.conftest import run_jobs
from whoopadmin.connect.models import Link
from whoopadmin.destinations import service as destinations
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection

EVERY_EVENT = None  # subscribe() default: every event type


def subscribe(app, events=None) -> int:
    """A destination (never reached: deliveries are read from the log) for ``events``."""
    from whoopadmin.destinations.models import EVENT_TYPES

    app.config["ALLOW_PRIVATE_DESTINATIONS"] = True
    with app.app_context():
        connection = db.session.scalar(sa.select(Connection).order_by(Connection.id))
        destination, _ = destinations.create_destination(
            "test", connection, "http://127.0.0.1:9/in", list(events or EVENT_TYPES)
        )
        return destination.id


def uid_of(app, link_id: int) -> str:
    with app.app_context():
        return db.session.get(Link, link_id).uid


@pytest.fixture
def backfilled(configured_app, linked) -> str:
    """The sandbox member connected through the real flow and backfilled; its user id."""
    run_jobs(configured_app, ("backfill",))
    return uid_of(configured_app, linked)
