"""Links per status, kept by triggers on ``links``: right after every kind of change.

Runs on SQLite, and on PostgreSQL when WHOOPADMIN_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from tests.factories import make_connection, make_link
from tests.helpers import reset_schema
from whoopadmin.connect import counts
from whoopadmin.connect.models import Link
from whoopadmin.extensions import db


def counted(connection_ids=None) -> dict[str, int]:
    """What a plain count of ``links`` says."""
    query = sa.select(Link.status, sa.func.count()).group_by(Link.status)
    if connection_ids is not None:
        query = query.where(Link.connection_id.in_(connection_ids))
    return dict(db.session.execute(query).all())


def check(*connection_ids: int) -> dict[str, int]:
    db.session.commit()  # a fresh look, as a new request has
    assert counts.counts() == counted()
    for cid in connection_ids:
        assert counts.counts([cid]) == counted([cid])
    return counts.counts()


@pytest.fixture
def two(app):
    with app.app_context():
        first = make_connection()
        second = make_connection(
            environment="staging", client_id="client-stg", hostname="whoop-stg.acme.com"
        )
        yield first, second


def test_counts_follow_every_kind_of_change(app, two):
    first, second = two
    links = [
        make_link(first, whoop_user_id=100 + n, status="reauth_required" if n % 4 else "active")
        for n in range(12)
    ]
    make_link(second, whoop_user_id=500)
    assert check(first.id, second.id) == {"active": 4, "reauth_required": 9}

    # The ORM, as the refresh and disconnect code set it.
    links[1].status = "active"
    links[2].status = "error"
    db.session.commit()
    assert check(first.id, second.id) == {"active": 5, "reauth_required": 7, "error": 1}

    # An update that writes the same status (as the token store's CASE does): no change.
    db.session.execute(sa.update(Link).values(status=Link.status, refresh_failures=1))
    # A bulk update, as tokens.py's compare-and-swap writes it.
    db.session.execute(
        sa.update(Link)
        .where(Link.status == "reauth_required", Link.connection_id == first.id)
        .values(status=sa.case((Link.id % 2 == 0, "revoked"), else_="active"))
    )
    assert check(first.id, second.id) == {"active": 7, "revoked": 5, "error": 1}

    # Raw SQL, a move to another connection, a rollback, a delete.
    db.session.execute(
        sa.text("UPDATE links SET connection_id = :c WHERE id = :id"),
        {"c": second.id, "id": links[0].id},
    )
    assert check(first.id, second.id)["active"] == 7
    assert counts.counts([second.id]) == {"active": 2}
    links[3].status = "error"
    db.session.flush()
    db.session.rollback()
    assert check(first.id, second.id)["error"] == 1
    db.session.execute(sa.delete(Link).where(Link.id == links[2].id))
    assert check(first.id, second.id) == {"active": 7, "revoked": 5}


def test_counts_survive_compaction(app, two, monkeypatch):
    first, second = two
    for n in range(30):
        make_link(first if n % 3 else second, whoop_user_id=n + 1)
    for n, link in enumerate(db.session.scalars(sa.select(Link).order_by(Link.id)).all()):
        link.status = ("error", "revoked", "active")[n % 3]
        db.session.commit()
    before = db.session.scalar(sa.select(sa.func.count()).select_from(counts.LinkStatusCount))
    monkeypatch.setattr(counts, "COMPACT_ABOVE", 10)
    check(first.id, second.id)  # this read folds the rows
    after = db.session.scalar(sa.select(sa.func.count()).select_from(counts.LinkStatusCount))
    assert before > 10 and after <= 6  # (2 connections × 3 statuses)
    assert check(first.id, second.id) == {"active": 10, "error": 10, "revoked": 10}


def test_concurrent_changes_and_compactions_lose_nothing(app, two, monkeypatch):
    first, _ = two
    for n in range(40):
        make_link(first, whoop_user_id=n + 1)
    ids = list(db.session.scalars(sa.select(Link.id)))
    monkeypatch.setattr(counts, "COMPACT_ABOVE", 0)  # every read compacts
    errors = []

    def flip(part: list[int]) -> None:
        try:
            with app.app_context():
                for round_ in range(3):
                    for link_id in part:
                        for _ in range(5):  # SQLite: one writer at a time
                            try:
                                db.session.get(Link, link_id).status = ("error", "active")[
                                    round_ % 2
                                ]
                                db.session.commit()
                                break
                            except sa.exc.OperationalError:
                                db.session.rollback()
                    counts.counts()
                db.session.remove()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=flip, args=(ids[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert check(first.id) == counted()
    assert counted() == {"error": 40}


def test_the_support_list_shows_counts_after_status_changes(configured_app, support_client):
    with configured_app.app_context():
        links = [make_link(whoop_user_id=700 + n).id for n in range(5)]
        db.session.get(Link, links[0]).status = "reauth_required"
        db.session.commit()
    page = support_client.get("/links").get_data(as_text=True)
    assert 'data-status="active">active: 4<' in page
    assert 'data-status="reauth_required">reauth required: 1<' in page
    with configured_app.app_context():
        from whoopadmin.connect import service

        service.disconnect(db.session.get(Link, links[1]), "support-test")
        db.session.commit()
    page = support_client.get("/links", query_string={"environment": "production"})
    page = page.get_data(as_text=True)
    assert 'data-status="active">active: 3<' in page
    assert 'data-status="revoked">revoked: 1<' in page
    page = support_client.get("/links", query_string={"environment": "staging"})
    assert 'data-status="active">active: 0<' in page.get_data(as_text=True)


def test_migration_counts_existing_links_and_keeps_counting(make_app, tmp_path):
    """Upgrade a database holding links to the counts' revision; the triggers then count."""
    import os

    from tests.conftest import fresh_pg_database

    pg = os.environ.get("WHOOPADMIN_TEST_DATABASE_URL")
    url, drop = (
        fresh_pg_database(pg) if pg else (f"sqlite:///{tmp_path / 'm.sqlite3'}", lambda: None)
    )
    try:
        app = make_app(DATABASE_URL=url)
        with app.app_context():
            directory = app.extensions["migrate"].directory
            upgrade(directory=directory, revision="4f079f4ec490")
            connection = make_connection()
            for n in range(3):
                make_link(connection, whoop_user_id=n + 1, status=("active", "error")[n % 2])
            upgrade(directory=directory)
            assert check(connection.id) == {"active": 2, "error": 1}
            make_link(connection, whoop_user_id=99, status="revoked")
            db.session.execute(sa.update(Link).values(status="active"))
            assert check(connection.id) == {"active": 4}
            db.session.remove()
            db.engine.dispose()
    finally:
        drop()


def test_reset_schema_empties_the_counts(app, two):
    make_link(two[0], whoop_user_id=1)
    db.session.commit()
    db.session.remove()
    reset_schema(app)
    if db.engine.dialect.name == "sqlite":
        pytest.skip("SQLite test databases are fresh files")
    assert counts.counts() == counted() == {}
