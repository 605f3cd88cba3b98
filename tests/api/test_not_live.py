"""POST /api/v1/connect-sessions refuses connections that have not gone live (issue 14)."""

from __future__ import annotations

import sqlalchemy as sa

from tests.api.support import ApiClient
from whoopadmin.connect.models import ConnectSession
from whoopadmin.extensions import db


def test_pending_dns_connection_gets_409_connection_not_live(live_app, api_key, wizard):
    """A connection with credentials and a subdomain, still in pending_dns (never live)."""
    whoop_app = wizard.whoop_app("staging", "whoop-staging.acme.test")
    wizard.create("staging", "Acme staging")
    wizard.credentials("staging", whoop_app.client_id, whoop_app.client_secret)
    wizard.subdomain("staging", "whoop-staging.acme.test")
    staging = wizard.connection("staging")
    assert staging.status == "pending_dns" and staging.live_at is None

    api = ApiClient(live_app, api_key)
    response = api.post("/connect-sessions", json={"connection": "staging", "reference_id": "u"})
    assert response.status_code == 409
    assert response.json["error"] == "connection_not_live"
    assert response.json["field"] == "connection"
    assert "live" in response.json["message"]
    with live_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(ConnectSession.id))) == 0
    # The live connection next to it still takes sessions.
    ok = api.post("/connect-sessions", json={"connection": "production", "reference_id": "u"})
    assert ok.status_code == 201
