"""At scale the support pages use indexes: the list, searches, a link's page (PostgreSQL plans)."""

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


def _statements(run) -> list[tuple[str, object]]:
    """Call ``run``; return every (statement, parameters) it sent to the database."""
    sent = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    sa.event.listen(db.engine, "before_cursor_execute", listen)
    try:
        run()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", listen)
    return sent


def test_link_page_reads_only_the_links_rows_at_scale(app):
    """A link's page reads that link's rows by index, for a busy link and for a quiet one.

    ``WHERE link_id = … ORDER BY id DESC LIMIT n`` once led PostgreSQL to walk a table's
    primary key backwards, through every row, for a link with few or no rows of its own.
    """
    from whoopadmin.connect.models import Link

    with app.app_context():
        connection = make_connection()
        params = {"cid": connection.id}
        statements = [
            """
            INSERT INTO links (uid, connection_id, whoop_user_id, reference_id, status,
                               token_version, refresh_failures, connected_at, created_at,
                               updated_at)
            SELECT md5(i::text), :cid, 1000000 + i, 'ref-' || i, 'active', 0, 0, now(),
                   now(), now()
            FROM generate_series(1, 2000) AS i
            """,
            # 50,000 rows per table over links 1..1999, oldest first; link 2000 has none.
            """
            INSERT INTO webhook_events (connection_id, link_id, source, trace_id, type,
                                        status, attempts, received_at, body)
            SELECT :cid, 1 + i % 1999, 'member', md5(i::text), 'sleep.updated',
                   'processed', 1, now() - (50000 - i) * interval '1 minute', '{}'::json
            FROM generate_series(1, 50000) AS i
            """,
            """
            INSERT INTO sync_runs (link_id, type, reason, records, outcome, started_at,
                                   finished_at)
            SELECT 1 + i % 1999, 'sleep', 'webhook', 1, 'ok',
                   now() - (50000 - i) * interval '1 minute',
                   now() - (50000 - i) * interval '1 minute'
            FROM generate_series(1, 50000) AS i
            """,
            """
            INSERT INTO link_events (at, connection_id, link_id, kind, details)
            SELECT now() - (50000 - i) * interval '1 minute', :cid, 1 + i % 1999,
                   'token_refresh', '{}'::json
            FROM generate_series(1, 50000) AS i
            """,
            """
            INSERT INTO audit_events (at, actor, action, target_type, target_id, details)
            SELECT now() - (50000 - i) * interval '1 minute', 'support@example.com',
                   'link.resync', 'links', (1 + i % 1999)::text, '{}'::json
            FROM generate_series(1, 50000) AS i
            """,
        ]
        for statement in statements:
            db.session.execute(sa.text(statement), params)
        db.session.commit()
        db.session.execute(sa.text("ANALYZE"))
        for link_id in (1, 2000):
            link = db.session.get(Link, link_id)
            sent = _statements(
                lambda link=link: (
                    service.timeline(link),
                    service.sync_summary(link),
                    service.error_count(link),
                    service.last_webhook(link),
                    service.series(link, "recovery_score"),
                    service.raw_records(link),
                )
            )
            assert len(sent) >= 10
            for statement, parameters in sent:
                plan = "\n".join(
                    db.session.connection()
                    .exec_driver_sql(f"EXPLAIN {statement}", parameters)
                    .scalars()
                )
                assert "Backward using pk_" not in plan, f"link {link_id}: {statement}\n{plan}"
                for table in ("webhook_events", "sync_runs", "link_events", "audit_events"):
                    assert f"Seq Scan on {table}" not in plan, f"link {link_id}:\n{plan}"
