"""An operator sets up a connection in the browser: every wizard step, then a connect link."""

from __future__ import annotations

import re

from tests.e2e.conftest import OPERATOR, PRODUCTION_HOST, save_screenshot, sign_in

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or fails under CI) with the reason
    expect = None


def test_operator_completes_the_wizard_and_creates_a_connect_link(live, page):
    whoop_app = live.whoop_app(PRODUCTION_HOST)
    public = live.public(PRODUCTION_HOST)
    sign_in(page, live, OPERATOR)

    # Connections -> New connection.
    page.get_by_role("link", name="Connections").click()
    page.get_by_role("link", name="New connection").click()
    page.get_by_label("Environment").fill("production")
    page.get_by_label("Display name").fill("Acme Health")
    page.get_by_role("button", name="Create connection").click()

    # 1. Credentials: saved write-only, then verified at WHOOP (the sandbox).
    expect(page.get_by_role("heading", name="WHOOP credentials")).to_be_visible()
    page.get_by_label("Client id", exact=True).fill(whoop_app.client_id)
    page.get_by_label("Client secret", exact=True).fill(whoop_app.client_secret)
    page.get_by_role("button", name="Save credentials").click()
    expect(page.get_by_test_id("stored-secrets")).to_contain_text(
        "••••" + whoop_app.client_secret[-4:]
    )
    expect(page.locator("body")).not_to_contain_text(whoop_app.client_secret)
    page.get_by_role("button", name="Verify with WHOOP").click()
    expect(page.get_by_test_id("credentials-check")).to_contain_text("accepted")

    # 2. Subdomain: typed carelessly, normalised.
    page.get_by_role("link", name="Next: subdomain").click()
    page.get_by_label("Subdomain").fill("  Whoop.Demo.LocalHost. ")
    page.get_by_role("button", name="Save subdomain").click()

    # 3. DNS: the records to add, checked against the loopback DNS server for real.
    records = page.get_by_test_id("dns-records")
    expect(records).to_be_visible()
    routing = records.locator('tr[data-record="routing"]')
    validation = records.locator('tr[data-record="validation"]')
    expect(routing).to_contain_text("CNAME")
    expect(routing).to_contain_text("edge.demo.localhost.")
    expect(validation).to_contain_text("_acme-challenge.whoop")
    expect(validation).to_contain_text(".acme-dns.demo.localhost.")
    # Nothing is published yet: the check that the subdomain step queued finds no records.
    # The page polls while a check runs and reloads itself when the result is in.
    expect(page.get_by_test_id("dns-checked")).to_contain_text("Checking")
    live.run_jobs("domains")
    expect(page.get_by_test_id("findings")).to_be_visible()
    expect(page.get_by_test_id("record-state-routing")).to_have_text("missing")
    expect(page.get_by_test_id("connection-status")).not_to_have_text("verified")

    # The operator adds the records at their DNS provider, then presses "Check now".
    live.publish_zone()
    page.get_by_role("button", name="Check now").click()
    expect(page.get_by_test_id("dns-checked")).to_contain_text("Checking")
    live.run_jobs("domains")
    expect(page.get_by_test_id("connection-status")).to_have_text("verified")
    expect(page.get_by_test_id("record-state-routing")).to_have_text("ok")
    expect(page.get_by_test_id("record-state-validation")).to_have_text("ok")
    expect(page.get_by_test_id("dns-ok")).to_be_visible()
    save_screenshot(page, "dns-step")

    # 4. Certificate: allowed now that DNS is verified.
    page.get_by_role("link", name="Next: certificate").click()
    expect(page.get_by_test_id("tls-allowed")).to_contain_text("The hostname is verified")

    # 5. WHOOP registration: the exact strings, which the sandbox app was registered with.
    page.get_by_role("link", name="Next: WHOOP registration").click()
    expect(page.get_by_test_id("redirect-url")).to_have_text(f"{public}/auth/whoop/oauth2")
    expect(page.get_by_test_id("webhook-url")).to_have_text(f"{public}/hooks/whoop/push")
    expect(page.get_by_test_id("scopes")).to_contain_text("offline")
    assert whoop_app.redirect_uris == [f"{public}/auth/whoop/oauth2"]
    page.get_by_role("button", name="I have registered these at WHOOP").click()

    # 6. Go live: a signed test webhook through the public URL, the checklist, the button.
    expect(page.get_by_test_id("last-test-webhook")).to_have_text("No test event has arrived yet.")
    page.get_by_role("button", name="Send test webhook").click()
    expect(page.get_by_test_id("test-webhook-result")).to_contain_text("sending")
    live.run_jobs("webhooks")
    page.reload()
    expect(page.get_by_test_id("test-webhook-result")).to_contain_text(f"arrived through {public}")
    expect(page.get_by_test_id("last-test-webhook")).to_contain_text("Last test event arrived")
    checks = page.get_by_test_id("checklist").locator("[data-check]")
    expect(checks.first).to_be_visible()
    expect(page.get_by_test_id("checklist").locator('[data-ok="no"]')).to_have_count(0)
    expect(page.get_by_test_id("member-cap")).to_contain_text("Linked WHOOP members: 0 of 10")
    page.get_by_role("button", name="Go live").click()
    expect(page.get_by_test_id("live")).to_contain_text("Live since")
    expect(page.get_by_test_id("connection-status")).to_have_text(re.compile("verified|active"))
    steps = page.get_by_test_id("wizard-steps").locator("[data-step]")
    expect(steps.first).to_be_visible()
    expect(page.get_by_test_id("wizard-steps").locator('[data-done="no"]')).to_have_count(0)

    # A connect link, on the connection's own host, with its QR code.
    page.get_by_role("link", name="Connect links").click()
    page.get_by_label("Reference id").fill("wizard-user-1")
    page.get_by_role("button", name="Create connect link").click()
    created = page.get_by_test_id("created-link")
    expect(created).to_contain_text("wizard-user-1")
    expect(page.get_by_test_id("connect-url")).to_have_text(
        re.compile(rf"^{re.escape(public)}/connect/\S{{20,}}$")
    )
    expect(page.get_by_test_id("qr").locator("svg")).to_be_visible()
    expect(page.get_by_test_id("recent-links")).to_contain_text("wizard-user-1")
