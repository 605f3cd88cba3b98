"""Helpers for the connect tests: links, timeline rows and deliveries as stored."""

from __future__ import annotations

import json

import sqlalchemy as sa

from whoopadmin.connect.models import Link, LinkEvent
from whoopadmin.destinations.models import LIFECYCLE_EVENTS, Delivery
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection


def add_destination(app, connection_id: int) -> int:
    """A destination that wants every lifecycle event (never sent to: tests read the
    deliveries it gets)."""
    from whoopadmin.destinations import service

    app.config["ALLOW_PRIVATE_DESTINATIONS"] = True
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        created, _ = service.create_destination(
            "test", connection, "http://127.0.0.1:9/hooks", LIFECYCLE_EVENTS
        )
        return created.id


def deliveries(app, event_type: str | None = None) -> list[dict]:
    """The payloads of the deliveries made so far (of one event type, if given)."""
    with app.app_context():
        query = sa.select(Delivery).order_by(Delivery.id)
        if event_type is not None:
            query = query.where(Delivery.event_type == event_type)
        return [json.loads(row.payload) for row in db.session.scalars(query)]


def links(app) -> list[Link]:
    """Every link, detached, with its tokens opened (as ``access`` and ``refresh``)."""
    with app.app_context():
        rows = db.session.scalars(sa.select(Link).order_by(Link.id)).all()
        for link in rows:
            link.access, link.refresh = link.access_token, link.refresh_token
            db.session.expunge(link)
        return rows


def events(app, link_id: int | None = None) -> list[LinkEvent]:
    """The timeline rows (of one link, if given), detached, oldest first."""
    with app.app_context():
        query = sa.select(LinkEvent).order_by(LinkEvent.id)
        if link_id is not None:
            query = query.where(LinkEvent.link_id == link_id)
        rows = db.session.scalars(query).all()
        for row in rows:
            db.session.expunge(row)
        return rows
