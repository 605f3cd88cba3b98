"""The setup wizard driven through the test client, against the sandbox and a real DNS server."""

import re

import pytest
import sqlalchemy as sa

from tests.conftest import run_jobs
from tests.factories import make_user
from tests.helpers import csrf_from
from whoopadmin.audit import AuditEvent
from whoopadmin.extensions import db

STEP_PAGES = ("credentials", "subdomain", "dns", "certificate", "whoop", "go-live")


def test_whole_wizard(configured_app, wizard, operator_client):
    c = wizard.connection("production")
    assert c.status == "active" and c.live_at is not None
    assert c.credentials_check == "accepted"
    assert c.hostname == "whoop.acme.test" and c.zone == "acme.test"
    page = operator_client.get("/setup/production/go-live").get_data(as_text=True)
    assert page.count('data-ok="yes"') == 5 and 'data-ok="no"' not in page
    assert 'data-testid="live"' in page
    assert "Linked WHOOP members: <strong>0</strong>" in page
    steps = operator_client.get("/setup/production/whoop").get_data(as_text=True)
    assert steps.count('data-done="yes"') == 6
    overview = operator_client.get("/setup").get_data(as_text=True)
    assert "whoop.acme.test" in overview and "6 of 6 steps done" in overview
    with configured_app.app_context():
        actions = set(db.session.scalars(sa.select(AuditEvent.action)))
    assert {
        "connection.create",
        "connection.credentials",
        "connection.verify_credentials",
        "connection.hostname",
        "connection.dns_status",
        "connection.whoop_registered",
        "connection.go_live",
    } <= actions


def test_wizard_is_resumable(wizard, operator_client):
    wizard.create("staging", "Acme staging")
    assert operator_client.get("/setup/staging").headers["Location"] == (
        "/setup/staging/credentials"
    )
    whoop_app = wizard.whoop_app("staging")
    wizard.credentials("staging", whoop_app.client_id, whoop_app.client_secret)
    wizard.verify("staging")
    assert operator_client.get("/setup/staging").headers["Location"] == ("/setup/staging/subdomain")
    wizard.subdomain("staging", "whoop.acme.test")
    assert operator_client.get("/setup/staging").headers["Location"] == "/setup/staging/dns"


def test_registration_strings(configured_app, operator_client):
    page = operator_client.get("/setup/production/whoop").get_data(as_text=True)
    assert 'data-testid="redirect-url">https://whoop.acme.test/auth/whoop/oauth2<' in page
    assert 'data-testid="webhook-url">https://whoop.acme.test/hooks/whoop/push<' in page
    assert (
        "offline read:profile read:body_measurement read:cycles read:recovery read:sleep "
        "read:workout"
    ) in page
    assert 'data-copy="https://whoop.acme.test/auth/whoop/oauth2"' in page


def test_public_urls_use_configured_scheme_and_port(make_app, wizard_config):
    from tests.helpers import reset_schema
    from whoopadmin.setup import service

    app = make_app(PUBLIC_SCHEME="http", PUBLIC_PORT=5000, **wizard_config)
    reset_schema(app)
    with app.app_context():
        from tests.factories import make_connection

        c = make_connection(hostname="whoop.acme.localhost")
        assert service.redirect_url(c) == "http://whoop.acme.localhost:5000/auth/whoop/oauth2"
        assert service.webhook_url(c) == "http://whoop.acme.localhost:5000/hooks/whoop/push"


# --------------------------------------------------------------------------- step 0


@pytest.mark.parametrize(
    ("environment", "name", "message"),
    [
        ("Prod Env", "Acme", b"lower-case letters"),
        ("-prod", "Acme", b"lower-case letters"),
        ("a" * 70, "Acme", b"Field cannot be longer"),
        ("production", "", b"This field is required"),
        ("production", "   ", b"This field is required"),
    ],
)
def test_new_connection_bad_input(wizard, app, environment, name, message):
    response = wizard.create(environment, name)
    assert response.status_code == 400
    assert message in response.data
    assert wizard.connection("production") is None


def test_duplicate_environment(wizard):
    wizard.create("production", "First")
    response = wizard.create("production", "Second")
    assert response.status_code == 400
    assert b"already a connection for production" in response.data
    assert wizard.connection("production").display_name == "First"


def test_unknown_environment_is_404(operator_client):
    for step in STEP_PAGES:
        assert operator_client.get(f"/setup/nope/{step}").status_code == 404
    assert operator_client.get("/setup/nope").status_code == 404


# --------------------------------------------------------------------------- step 1


def test_credentials_are_masked_and_kept(wizard, operator_client):
    wizard.create()
    response = wizard.credentials(
        "production",
        "  client-123  ",
        "\tsecret-value-abcdef-9f3a\n",
        webhook_signing_secret="signing-secret-xyz-7777",
    )
    assert response.headers["Location"] == "/setup/production/credentials"
    page = operator_client.get("/setup/production/credentials").get_data(as_text=True)
    assert "••••9f3a" in page and "••••7777" in page
    assert "secret-value-abcdef" not in page and "signing-secret-xyz" not in page
    c = wizard.connection("production")
    assert c.client_id == "client-123"
    # A blank secret keeps the stored one.
    wizard.credentials("production", "client-123", "")
    with wizard.app.app_context():
        from whoopadmin.setup.models import Connection

        stored = db.session.get(Connection, c.id)
        assert stored.client_secret == "secret-value-abcdef-9f3a"
        assert stored.webhook_signing_secret == "signing-secret-xyz-7777"


@pytest.mark.parametrize(
    ("client_id", "secret", "message"),
    [
        ("client 123", "a-secret-value", b"client id contains spaces"),
        ("client-123", "a-secret\nvalue", b"client secret contains spaces"),
        ("client-123", "a-secret\x01value", b"client secret contains spaces"),
        ("", "a-secret-value", b"This field is required"),
        ("client-123", "x" * 301, b"Field cannot be longer"),
    ],
)
def test_credentials_bad_input(wizard, client_id, secret, message):
    wizard.create()
    wizard.credentials("production", "kept-client", "kept-secret-value")
    response = wizard.credentials("production", client_id, secret)
    assert response.status_code == 400
    assert message in response.data
    assert b"kept-secret-value" not in response.data
    assert wizard.connection("production").client_id == "kept-client"


def test_first_credentials_need_a_secret(wizard):
    wizard.create()
    response = wizard.credentials("production", "client-123", "   ")
    assert response.status_code == 400
    assert b"client secret is required" in response.data
    assert wizard.connection("production").client_id is None


def test_verify_accepted_and_rejected(wizard, operator_client):
    whoop_app = wizard.whoop_app()
    wizard.create()
    wizard.credentials("production", whoop_app.client_id, "the-wrong-secret")
    wizard.verify("production")
    c = wizard.connection("production")
    assert c.credentials_check == "invalid_client"
    page = operator_client.get("/setup/production/credentials").get_data(as_text=True)
    assert "WHOOP rejected the client id or secret" in page
    wizard.credentials("production", whoop_app.client_id, whoop_app.client_secret)
    assert wizard.connection("production").credentials_check is None  # reset by the change
    wizard.verify("production")
    assert wizard.connection("production").credentials_check == "accepted"
    page = operator_client.get("/setup/production/credentials").get_data(as_text=True)
    assert "WHOOP accepted the client id and secret" in page
    assert whoop_app.client_secret not in page


def test_verify_unreachable(make_app, wizard_config, client_factory=None):
    from tests.helpers import AuthActions, reset_schema

    config = dict(wizard_config, WHOOP_TOKEN_URL="http://127.0.0.1:1/oauth/oauth2/token")
    app = make_app(**config)
    reset_schema(app)
    with app.app_context():
        make_user("operator")
    client = app.test_client()
    AuthActions(client).login()
    token = csrf_from(client.get("/setup/new").get_data(as_text=True))
    client.post("/setup/new", data={"environment": "dev", "display_name": "D", "csrf_token": token})
    token = csrf_from(client.get("/setup/dev/credentials").get_data(as_text=True))
    client.post(
        "/setup/dev/credentials",
        data={"client_id": "c", "client_secret": "s-secret-value", "csrf_token": token},
    )
    token = csrf_from(client.get("/setup/dev/credentials").get_data(as_text=True))
    response = client.post("/setup/dev/credentials/verify", data={"csrf_token": token})
    assert response.headers["Location"] == "/setup/dev/credentials"
    page = client.get("/setup/dev/credentials").get_data(as_text=True)
    assert "Could not reach WHOOP" in page
    assert "s-secret-value" not in page


def test_verify_without_credentials(wizard, operator_client):
    wizard.create()
    before = operator_client.get("/setup/production/credentials").get_data(as_text=True)
    # The button is off, and the page says why and what to do.
    assert re.search(r"<button[^>]*disabled[^>]*>Verify with WHOOP</button>", before)
    assert 'data-testid="verify-hint"' in before and "Save credentials" in before
    wizard.verify("production")
    page = operator_client.get("/setup/production/credentials").get_data(as_text=True)
    assert "Save a client id and secret first." in page


# --------------------------------------------------------------------------- step 2


@pytest.mark.parametrize(
    "hostname",
    [
        "192.0.2.1",
        "[2001:db8::1]",
        "*.acme.test",
        "who_op.acme.test",
        "acme.test",
        "a" * 64 + ".acme.test",
        ".".join(["abcdefghi"] * 26) + ".acme.test",
        "whoop..acme.test",
        "",
        "   ",
        "localhost",
    ],
)
def test_subdomain_rejections(wizard, hostname):
    wizard.create()
    wizard.subdomain("production", "whoop.acme.test")
    response = wizard.subdomain("production", hostname)
    assert response.status_code == 400, hostname
    assert b"is-invalid" in response.data
    assert wizard.connection("production").hostname == "whoop.acme.test"


def test_subdomain_used_by_another_connection(wizard):
    wizard.create("production")
    wizard.subdomain("production", "whoop.acme.test")
    wizard.create("staging", "S")
    response = wizard.subdomain("staging", "WHOOP.acme.test.")
    assert response.status_code == 400
    assert b"already used by the production connection" in response.data
    assert wizard.connection("staging").hostname is None


def test_subdomain_is_normalised(wizard):
    wizard.create()
    response = wizard.subdomain("production", "  Whoop.Bücher.TEST. ")
    assert response.headers["Location"] == "/setup/production/dns"
    c = wizard.connection("production")
    assert c.hostname == "whoop.xn--bcher-kva.test"
    assert c.status == "pending_dns" and len(c.validation_token) >= 20
    wizard.subdomain("production", "https://WHOOP.acme.test/connect?x=1")
    assert wizard.connection("production").hostname == "whoop.acme.test"


# --------------------------------------------------------------------------- step 3


def test_dns_page_shows_records_and_missing_findings(wizard, operator_client):
    wizard.create()
    wizard.subdomain("production", "whoop.acme.test")
    page = operator_client.get("/setup/production/dns").get_data(as_text=True)
    c = wizard.connection("production")
    assert 'data-copy="whoop"' in page  # the label only
    assert 'data-copy="edge.whoopadmin.test."' in page
    assert f'data-copy="{c.validation_token}.acme-dns.whoopadmin.test."' in page
    assert 'data-copy="_acme-challenge.whoop"' in page
    assert "not checked yet" in page and "Checking" in page
    assert c.status == "pending_dns"  # nothing ran in the request
    run_jobs(wizard.app)
    c = wizard.connection("production")
    assert c.status == "pending_dns" and c.dns_checked_at is not None
    page = operator_client.get("/setup/production/dns").get_data(as_text=True)
    assert 'data-code="record_missing"' in page
    status = operator_client.get("/setup/production/dns/status").json
    assert status["status"] == "pending_dns" and status["checking"] is False
    assert "record_missing" in [f["code"] for f in status["findings"]]


def test_dns_wrong_target_then_fixed(wizard, operator_client, dns):
    from tests.helpers import zone

    wizard.create()
    wizard.subdomain("production", "whoop.acme.test")
    c = wizard.connection("production")
    dns.load_zone(
        zone(
            "acme.test",
            "whoop CNAME lb.elsewhere.example.\n"
            f"_acme-challenge.whoop CNAME {c.validation_token}.acme-dns.whoopadmin.test.\n",
        ),
        origin="acme.test",
    )
    run_jobs(wizard.app)
    assert wizard.connection("production").status == "misconfigured"
    page = operator_client.get("/setup/production/dns").get_data(as_text=True)
    assert 'data-code="wrong_target"' in page and "lb.elsewhere.example" in page
    wizard.publish_records("production")
    wizard.check_dns("production")
    assert wizard.connection("production").status == "verified"
    page = operator_client.get("/setup/production/dns").get_data(as_text=True)
    assert 'data-testid="dns-ok"' in page


def test_check_now_is_rate_limited(make_app, wizard_config, sandbox, dns):
    from tests.conftest import Wizard
    from tests.helpers import AuthActions, reset_schema

    app = make_app(DNS_CHECK_NOW_LIMIT="2 per minute", **wizard_config)
    reset_schema(app)
    with app.app_context():
        make_user("operator")
    client = app.test_client()
    AuthActions(client).login()
    w = Wizard(app, client, sandbox, dns)
    w.create()
    w.subdomain("production", "whoop.acme.test")
    answers = [
        w.post("/setup/production/dns/check", page="/setup/production/dns") for _ in range(3)
    ]
    # The third press is refused: back on the DNS page (no 429 page), told when to retry.
    assert [a.status_code for a in answers] == [303, 303, 303]
    assert {a.headers["Location"] for a in answers} == {"/setup/production/dns"}
    page = client.get("/setup/production/dns").get_data(as_text=True)
    match = re.search(
        r"Check now was pressed too often \(2 per minute allowed\)\. Try again in (\d+) "
        r"seconds? \(after \d\d:\d\d:\d\d UTC\)",
        page,
    )
    assert match and 1 <= int(match.group(1)) <= 61, page  # the window may round up
    assert "Checking DNS now" not in page  # the refused press queued nothing


def test_issuer_record(wizard, operator_client, dns):
    from tests.helpers import zone

    wizard.create()
    wizard.subdomain("production", "whoop.acme.test")
    response = wizard.post(
        "/setup/production/dns/issuer",
        {"name": "_x1.whoop.acme.test.", "type": "TXT", "value": '"issuer-proof-123"'},
        page="/setup/production/dns",
    )
    assert response.headers["Location"] == "/setup/production/dns"
    c = wizard.connection("production")
    assert c.issuer_record["value"] == "issuer-proof-123"
    page = operator_client.get("/setup/production/dns").get_data(as_text=True)
    assert 'data-copy="_x1.whoop"' in page and "_acme-challenge" not in page.split("<details")[0]
    dns.load_zone(
        zone("acme.test", 'whoop CNAME edge.whoopadmin.test.\n_x1.whoop TXT "issuer-proof-123"\n'),
        origin="acme.test",
    )
    run_jobs(wizard.app)
    assert wizard.connection("production").status == "verified"
    wizard.post("/setup/production/dns/issuer/clear", page="/setup/production/dns")
    assert wizard.connection("production").issuer_record is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "_x.other.example", "type": "TXT", "value": "v"}, b"not under"),
        ({"name": "_x.whoop.acme.test", "type": "MX", "value": "v"}, b"Not a valid choice"),
        ({"name": "_x.whoop.acme.test", "type": "TXT", "value": '""'}, b"empty"),
        ({"name": "_x.whoop.acme.test", "type": "CNAME", "value": "not a name!"}, b""),
        ({"name": "", "type": "TXT", "value": "v"}, b"This field is required"),
    ],
)
def test_issuer_record_bad_input(wizard, data, message):
    wizard.create()
    wizard.subdomain("production", "whoop.acme.test")
    response = wizard.post("/setup/production/dns/issuer", data, page="/setup/production/dns")
    assert response.status_code == 400
    assert message in response.data
    c = wizard.connection("production")
    assert c.issuer_record is None and c.hostname == "whoop.acme.test"


# --------------------------------------------------------------------------- steps 4-6


def test_go_live_refused_until_green(wizard, operator_client):
    wizard.create()
    response = wizard.post("/setup/production/go-live")
    assert response.status_code == 409
    assert b"Not ready to go live" in response.data
    assert wizard.connection("production").live_at is None
    page = operator_client.get("/setup/production/go-live").get_data(as_text=True)
    assert page.count('data-ok="no"') == 5
    assert "of 10" in page


def test_member_cap_counts_links(configured_app, operator_client):
    from tests.factories import make_link

    with configured_app.app_context():
        for n in range(3):
            make_link(whoop_user_id=1000 + n)
        make_link(whoop_user_id=2000, status="revoked")
    page = operator_client.get("/setup/production/go-live").get_data(as_text=True)
    assert "Linked WHOOP members: <strong>3</strong>" in page


def test_confirm_whoop_needs_a_subdomain(wizard):
    wizard.create()
    response = wizard.post("/setup/production/whoop")
    assert response.headers["Location"] == "/setup/production/subdomain"
    assert wizard.connection("production").whoop_registered_at is None


# --------------------------------------------------------------------------- roles, secrets


def test_support_gets_403_on_every_wizard_page(configured_app, client, auth):
    with configured_app.app_context():
        make_user("support")
    auth.logout()
    auth.login("support@example.com", "support-password")
    pages = ["/setup", "/setup/new", "/setup/production", "/setup/production/dns/status"]
    pages += [f"/setup/production/{step}" for step in STEP_PAGES]
    for page in pages:
        assert client.get(page).status_code == 403, page
    token = csrf_from(client.get("/").get_data(as_text=True))
    posts = [
        "/setup/new",
        "/setup/production/credentials",
        "/setup/production/credentials/verify",
        "/setup/production/subdomain",
        "/setup/production/dns/check",
        "/setup/production/dns/issuer",
        "/setup/production/dns/issuer/clear",
        "/setup/production/whoop",
        "/setup/production/go-live",
    ]
    for page in posts:
        assert client.post(page, data={"csrf_token": token}).status_code == 403, page


def test_wizard_requires_login(client):
    assert client.get("/setup").headers["Location"].startswith("/login")


def test_no_secret_on_any_page(configured_app, operator_client, wizard):
    secret = configured_app.whoop_app.client_secret
    wizard.credentials(
        "production",
        configured_app.whoop_app.client_id,
        "",
        partner_client_id="partner-1",
        partner_client_secret="partner-secret-abc-1234",
        webhook_signing_secret="signing-secret-def-5678",
    )
    pages = ["/", "/setup", "/setup/production/dns/status"]
    pages += [f"/setup/production/{step}" for step in STEP_PAGES]
    for page in pages:
        body = operator_client.get(page).get_data(as_text=True)
        for value in (secret, "partner-secret-abc", "signing-secret-def"):
            assert value not in body, (page, value)
    with configured_app.app_context():
        details = repr(db.session.scalars(sa.select(AuditEvent.details)).all())
    assert secret not in details and "partner-secret-abc" not in details


def test_csrf_required_on_wizard_forms(wizard, operator_client):
    wizard.create()
    response = operator_client.post(
        "/setup/production/credentials", data={"client_id": "x", "client_secret": "y"}
    )
    assert response.status_code == 400
    assert wizard.connection("production").client_id is None


# --------------------------------------------------------------------------- settings


def _settings(wizard, **overrides):
    data = {
        "display_name": "Acme Health",
        "allowed_origins": "https://app.acme.test\n\nhttp://localhost:3000\nhttps://APP.acme.test/",
        "app_schemes": "acmehealth\nAcmeDev://",
        "rate_limit_per_minute": "50",
        "rate_limit_per_day": "5000",
        "approved_by_whoop": "y",
    }
    data.update(overrides)
    return wizard.post("/setup/production/settings", data)


def test_settings_saved_and_normalised(wizard):
    wizard.create()
    response = _settings(wizard)
    assert response.headers["Location"] == "/setup/production/settings"
    c = wizard.connection("production")
    assert c.allowed_origins == ["https://app.acme.test", "http://localhost:3000"]
    assert c.app_schemes == ["acmehealth", "acmedev"]
    assert (c.rate_limit_per_minute, c.rate_limit_per_day) == (50, 5000)
    assert c.approved_by_whoop is True


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("allowed_origins", "http://app.acme.test", b"must use https"),
        ("allowed_origins", "https://app.acme.test/callback", b"has a path"),
        ("allowed_origins", "javascript:alert(1)", b"not an origin"),
        ("allowed_origins", "https://app.acme.test:99999", b"not an origin"),
        ("allowed_origins", "https://*.acme.test", b"wildcard"),
        ("app_schemes", "https", b"not a custom app scheme"),
        ("app_schemes", "javascript", b"not a custom app scheme"),
        ("app_schemes", "bad scheme", b"not a custom app scheme"),
        ("rate_limit_per_minute", "0", b"Number must be between"),
        ("rate_limit_per_minute", "many", b"Not a valid integer"),
        ("rate_limit_per_day", "10", b"cannot be below"),
        ("display_name", "", b"This field is required"),
    ],
)
def test_settings_bad_input(wizard, field, value, message):
    wizard.create()
    _settings(wizard)
    response = _settings(wizard, **{field: value})
    assert response.status_code == 400
    assert message in response.data
    c = wizard.connection("production")
    assert c.allowed_origins == ["https://app.acme.test", "http://localhost:3000"]
    assert c.rate_limit_per_minute == 50
