"""The demo's DNS: names get records only when published (an audited, demo-only action),
and the prepared names each produce their finding through the wizard's real check."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.conftest import Wizard, run_jobs
from tests.factories import make_user
from tests.helpers import AuthActions, csrf_from
from whoopadmin.audit import AuditEvent
from whoopadmin.demo import demo_zone
from whoopadmin.demokit import dnszone
from whoopadmin.demokit.service import PUBLISH_ACTION, reload_when_connections_change
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection


@pytest.fixture
def demo_app(make_app, dns_server, sandbox):
    """The app as the demo configures it, checking DNS against a loopback server."""
    from tests.helpers import reset_schema

    app = make_app(
        DEMO=True,
        DNS_NAMESERVERS=f"127.0.0.1:{dns_server.port}",
        DNS_TIMEOUT=1.5,
        CNAME_TARGET=dnszone.CNAME_TARGET,
        VALIDATION_DOMAIN=dnszone.VALIDATION_DOMAIN,
        WHOOP_AUTH_URL=sandbox.auth_url,
        WHOOP_TOKEN_URL=sandbox.token_url,
        WHOOP_API_BASE=sandbox.api_base,
    )
    reset_schema(app)

    def reload() -> None:  # what the running demo puts in place
        dns_server.load_zone(demo_zone(app), origin=dnszone.ZONE)

    app.extensions["whoopadmin.demo_dns_reload"] = reload
    reload_when_connections_change()
    reload()
    yield app
    dns_server.remove_zone(dnszone.ZONE)


@pytest.fixture
def demo_wizard(demo_app, dns_server, sandbox):
    client = demo_app.test_client()
    with demo_app.app_context():
        make_user("operator")
        make_user("support")
    AuthActions(client).login()
    return Wizard(demo_app, client, sandbox, dns_server)


def _status_and_codes(app, environment: str) -> tuple[str, list[str]]:
    with app.app_context():
        c = db.session.scalar(sa.select(Connection).where(Connection.environment == environment))
        return c.status, [f["code"] for f in (c.dns_result or {}).get("findings", [])]


def _publish(wizard: Wizard, environment: str):
    return wizard.post(f"/setup/{environment}/dns/demo-publish", page=f"/setup/{environment}/dns")


def test_a_typed_name_has_no_records_until_published(demo_app, demo_wizard):
    demo_wizard.create("production")
    demo_wizard.subdomain("production", "whoop.demo.localhost")
    run_jobs(demo_app)
    status, codes = _status_and_codes(demo_app, "production")
    assert status == "pending_dns" and codes == ["record_missing", "record_missing"]
    page = demo_wizard.client.get("/setup/production/dns").get_data(as_text=True)
    assert "Publish these records in the demo DNS" in page

    response = _publish(demo_wizard, "production")
    assert response.status_code == 303
    assert response.headers["Location"] == "/setup/production/dns"
    run_jobs(demo_app)  # the publish queued a check
    assert _status_and_codes(demo_app, "production") == ("verified", [])
    with demo_app.app_context():
        event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == PUBLISH_ACTION))
        assert event.actor == "operator@example.com"
        assert event.details["hostname"] == "whoop.demo.localhost"
        assert {r["type"] for r in event.details["records"]} == {"CNAME"}


def test_a_new_subdomain_loses_what_the_old_one_published(demo_app, demo_wizard):
    demo_wizard.create("production")
    demo_wizard.subdomain("production", "whoop.demo.localhost")
    _publish(demo_wizard, "production")
    run_jobs(demo_app)
    demo_wizard.subdomain("production", "other.demo.localhost")
    zone = demo_zone(demo_app)
    assert "whoop.demo.localhost." not in zone and "other.demo.localhost." not in zone


@pytest.mark.parametrize("name", dnszone.PREPARED, ids=lambda p: p.hostname)
def test_each_prepared_name_produces_its_finding(demo_app, demo_wizard, name):
    demo_wizard.create("mistake")
    demo_wizard.subdomain("mistake", name.hostname)  # the zone follows at the commit
    run_jobs(demo_app)
    status, codes = _status_and_codes(demo_app, "mistake")
    assert (status, codes) == ("misconfigured", [name.finding])
    # Publishing the right records fixes it, as it would at a real DNS provider.
    _publish(demo_wizard, "mistake")
    run_jobs(demo_app)
    assert _status_and_codes(demo_app, "mistake") == ("verified", [])


def test_publishing_is_for_operators_of_the_demo_with_a_valid_form(demo_app, demo_wizard):
    demo_wizard.create("production")
    demo_wizard.subdomain("production", "whoop.demo.localhost")
    client = demo_wizard.client
    # No CSRF token: refused, nothing published.
    assert client.post("/setup/production/dns/demo-publish").status_code == 400
    # Support staff may not publish.
    support = demo_app.test_client()
    AuthActions(support).login("support@example.com", "support-password")
    token = csrf_from(support.get("/").get_data(as_text=True))
    forbidden = support.post("/setup/production/dns/demo-publish", data={"csrf_token": token})
    assert forbidden.status_code == 403
    # Nobody signed in.
    anonymous = demo_app.test_client().post("/setup/production/dns/demo-publish")
    assert anonymous.status_code in (302, 400, 401)  # CSRF refuses it first
    assert client.post("/setup/nowhere/dns/demo-publish").status_code in (400, 404)
    # Outside the demo the button and the route do not exist.
    demo_app.config["DEMO"] = False
    page = client.get("/setup/production/dns").get_data(as_text=True)
    assert "demo DNS" not in page
    assert _publish(demo_wizard, "production").status_code == 404
    with demo_app.app_context():
        published = sa.select(AuditEvent).where(AuditEvent.action == PUBLISH_ACTION)
        assert db.session.scalars(published).all() == []


@pytest.mark.parametrize(
    ("hostname", "message"),
    [("whoop.acme.test", "serves only names under"), ("edge.demo.localhost", "uses itself")],
)
def test_names_the_demo_cannot_serve_are_refused_with_a_reason(
    demo_app, demo_wizard, hostname, message
):
    demo_wizard.create("production")
    demo_wizard.subdomain("production", hostname)
    response = _publish(demo_wizard, "production")
    assert response.status_code == 303
    page = demo_wizard.client.get("/setup/production/dns").get_data(as_text=True)
    assert message in page
    with demo_app.app_context():
        assert (
            db.session.scalar(
                sa.select(sa.func.count(AuditEvent.id)).where(AuditEvent.action == PUBLISH_ACTION)
            )
            == 0
        )


def test_a_broken_published_record_never_breaks_the_zone():
    records = [
        {"name": "ok.demo.localhost", "type": "CNAME", "value": "edge.demo.localhost.", "ttl": 300},
        {"name": "bad.demo.localhost", "type": "CNAME", "value": "not a name!", "ttl": 300},
        {"name": "edge.demo.localhost", "type": "CNAME", "value": "x.demo.localhost.", "ttl": 1},
        {"name": "elsewhere.example", "type": "CNAME", "value": "edge.demo.localhost."},
        {"name": "txt.demo.localhost", "type": "TXT", "value": 'quote " and \\ backslash'},
        {"type": "CNAME"},
    ]
    from whoopadmin.domains import DNSServer

    text = dnszone.zone_for(records, {})
    with DNSServer({dnszone.ZONE: text}):  # parses
        pass
    assert "ok.demo.localhost." in text and "txt.demo.localhost." in text
    assert "bad.demo.localhost" not in text and "elsewhere.example" not in text
    assert "x.demo.localhost" not in text
