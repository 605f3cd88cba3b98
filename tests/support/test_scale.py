"""At 100,000 links the support list and its searches use indexes (PostgreSQL plans)."""

import os

import pytest
import sqlalchemy as sa

from tests.factories import make_connection
from whoopadmin.extensions import db
from whoopadmin.support import service

pytestmark = pytest.mark.skipif(
    not os.environ.get("WHOOPADMIN_TEST_DATABASE_URL"),
    reason="query plans are checked on PostgreSQL (CI sets WHOOPADMIN_TEST_DATABASE_URL)",
)


def _plan(query) -> str:
    compiled = query.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True})
    rows = db.session.execute(sa.text(f"EXPLAIN {compiled}")).scalars().all()
    return "\n".join(rows)


def test_list_and_search_use_indexes_at_100k(app):
    with app.app_context():
        connection = make_connection()
        db.session.execute(
            sa.text(
                """
                INSERT INTO links (uid, connection_id, whoop_user_id, reference_id, status,
                                   email_hash, token_version, refresh_failures, connected_at,
                                   created_at, updated_at)
                SELECT md5(i::text), :cid, 1000000 + i, 'ref-' || i,
                       CASE WHEN i % 50 = 0 THEN 'reauth_required' ELSE 'active' END,
                       md5('mail' || i::text) || md5('x'), 0, 0, now(), now(), now()
                FROM generate_series(1, 100000) AS i
                """
            ),
            {"cid": connection.id},
        )
        db.session.commit()
        db.session.execute(sa.text("ANALYZE links"))
        cases = {
            "newest first": service.LinkFilters(),
            "by reference id": service.LinkFilters(q="ref-77777"),
            "by WHOOP user id": service.LinkFilters(q="1077777"),
            "by e-mail": service.LinkFilters(q="someone@example.com"),
            "by status": service.LinkFilters(status="reauth_required"),
        }
        for name, filters in cases.items():
            query = (
                service._filtered(filters.clean())
                .order_by(service.Link.id.desc())
                .limit(service.PAGE_SIZE + 1)
            )
            plan = _plan(query)
            assert "Seq Scan on links" not in plan, f"{name}:\n{plan}"
        deep = service._filtered(service.LinkFilters()).where(service.Link.id < 5000)
        plan = _plan(deep.order_by(service.Link.id.desc()).limit(51))
        assert "Seq Scan on links" not in plan, plan
        # The page itself, through the real view code, returns a full page and a cursor.
        links, cursor = service.list_links(service.LinkFilters(), before=60_000)
        assert len(links) == service.PAGE_SIZE and cursor == links[-1].id
