"""The real ``whoopadmin demo`` in a browser: its DNS mistakes and their findings, the
publish button, the demo receiver's inbox, and a restart that keeps a link working.

Unlike the other end-to-end tests (which wire the parts up in this process), these start
the demo command itself, with its worker and cron, on ports the system picks.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.conftest import PG_URL, fresh_pg_database
from tests.demo.support import DemoProcess
from tests.e2e.conftest import save_screenshot
from whoopadmin.demo import CLIENT_ID, CLIENT_SECRET, DEMO_ACCOUNTS
from whoopadmin.demokit.dnszone import PREPARED

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or fails under CI) with the reason
    expect = None

# The worker runs the checks and jobs here: give it time on a loaded machine.
SLOW_MS = 45_000


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    url, drop = fresh_pg_database(PG_URL) if PG_URL else (None, lambda: None)
    # --verbose: every log line on the console too (test_demo_process.py runs without).
    process = DemoProcess(tmp_path_factory.mktemp("demo"), url, extra_args=("--verbose",))
    try:
        yield process.start()
    finally:
        try:
            if process.process is not None and process.process.poll() is None:
                process.stop()
        finally:
            process.kill()
            drop()


def _sign_in(page, demo: DemoProcess) -> None:
    email, _, password = DEMO_ACCOUNTS[0]
    page.goto(f"{demo.admin}/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("whoami")).to_contain_text(email)


def _new_connection(page, demo: DemoProcess, environment: str, hostname: str) -> None:
    """Create a connection and choose its subdomain; ends on the DNS step."""
    page.goto(f"{demo.admin}/setup/new")
    page.get_by_label("Environment").fill(environment)
    page.get_by_label("Display name").fill("Acme Health")
    page.get_by_role("button", name="Create connection").click()
    page.goto(f"{demo.admin}/setup/{environment}/subdomain")
    page.get_by_label("Subdomain").fill(hostname)
    page.get_by_role("button", name="Save subdomain").click()
    expect(page.get_by_test_id("dns-records")).to_be_visible()


def test_the_demo_dns_shows_each_mistake_then_publishes_the_right_records(demo, new_page):
    page = new_page()
    _sign_in(page, demo)
    for n, name in enumerate(PREPARED):
        _new_connection(page, demo, f"mistake-{n}", name.hostname)
        # The check the subdomain step queued runs in the demo's worker; the page reloads
        # itself when the result is in.
        finding = page.get_by_test_id("findings").locator(f'[data-code="{name.finding}"]')
        expect(finding).to_be_visible(timeout=SLOW_MS)
        expect(page.get_by_test_id("findings").locator("[data-code]")).to_have_count(1)
        if name.finding == "zone_duplicated":
            save_screenshot(page, "dns-finding")

    # A name of the operator's own: nothing is published, so the records are missing…
    _new_connection(page, demo, "production", "whoop.demo.localhost")
    missing = page.get_by_test_id("findings").locator('[data-code="record_missing"]')
    expect(missing).to_have_count(2, timeout=SLOW_MS)
    # …until the operator publishes them, as they would at their DNS provider.
    page.get_by_role("button", name="Publish these records in the demo DNS").click()
    expect(page.get_by_test_id("connection-status")).to_have_text("verified", timeout=SLOW_MS)
    expect(page.get_by_test_id("dns-ok")).to_be_visible()


def test_a_test_delivery_lands_in_the_demo_receivers_inbox_signed(demo, new_page):
    admin = new_page()
    _sign_in(admin, demo)
    _new_connection(admin, demo, "receiver", "receiver.demo.localhost")
    admin.goto(f"{demo.admin}/destinations/new")
    admin.get_by_label("Connection", exact=True).select_option(label="receiver")
    admin.get_by_label("Destination URL").fill(f"{demo.receiver}/deliveries")
    admin.get_by_role("button", name="Create destination").click()
    secret = admin.get_by_test_id("new-secret").locator("code").inner_text().strip()
    assert secret.startswith("whsec_")

    inbox = new_page()
    inbox.goto(f"{demo.receiver}/")
    expect(inbox.get_by_test_id("deliveries-url")).to_have_text(f"{demo.receiver}/deliveries")
    inbox.get_by_label(re.compile("Signing secret")).fill(secret)
    inbox.get_by_role("button", name="Check signatures with it").click()
    expect(inbox.get_by_test_id("secret-state")).to_contain_text("A secret is set")
    expect(inbox.locator("body")).not_to_contain_text(secret)

    admin.get_by_role("link", name="Done").click()
    admin.get_by_role("button", name="Send test event").click()
    delivery = inbox.get_by_test_id("delivery")  # the inbox reloads itself every 5 s
    expect(delivery).to_have_count(1, timeout=SLOW_MS)
    expect(delivery).to_have_attribute("data-type", "test")
    expect(delivery).to_have_attribute("data-valid", "yes")
    expect(delivery.get_by_test_id("signature")).to_have_text("valid")
    expect(delivery.get_by_test_id("body")).to_contain_text('"type": "test"')
    save_screenshot(inbox, "demo-receiver")
    console = demo.output()
    assert "delivery received by the demo receiver: test (signature valid)" in console
    assert "[worker] " in console  # --verbose shows the worker's log lines too


def _member_from_banner(demo: DemoProcess) -> tuple[str, str, int]:
    found = re.search(
        r"^  (\S+@example\.com)  password (\S+)  \(user_id (\d+)\)$", demo.output(), re.M
    )
    return found[1], found[2], int(found[3])


def _reload_until(page, locator, timeout: float = SLOW_MS / 1000) -> None:
    deadline = time.monotonic() + timeout
    while locator.count() == 0:
        assert time.monotonic() < deadline, f"{locator} never appeared"
        time.sleep(1)
        page.reload()


def test_a_link_made_before_a_restart_keeps_working_after_it(demo, new_page):
    hostname = "restart.demo.localhost"
    email, password, user_id = _member_from_banner(demo)
    page = new_page()
    _sign_in(page, demo)
    _new_connection(page, demo, "restart", hostname)
    page.get_by_role("button", name="Publish these records in the demo DNS").click()
    expect(page.get_by_test_id("connection-status")).to_have_text("verified", timeout=SLOW_MS)
    page.goto(f"{demo.admin}/setup/restart/credentials")
    page.get_by_label("Client id", exact=True).fill(CLIENT_ID)
    page.get_by_label("Client secret", exact=True).fill(CLIENT_SECRET)
    page.get_by_role("button", name="Save credentials").click()
    page.get_by_role("button", name="Verify with WHOOP").click()
    expect(page.get_by_test_id("credentials-check")).to_contain_text("accepted")
    page.goto(f"{demo.admin}/setup/restart/whoop")
    page.get_by_role("button", name="I have registered these at WHOOP").click()
    page.get_by_role("button", name="Go live").click()
    expect(page.get_by_test_id("live")).to_contain_text("Live since")

    # A member connects through a connect link and the sandbox's consent page.
    page.goto(f"{demo.admin}/setup/restart/connect-links")
    page.get_by_label("Reference id").fill("restart-member")
    page.get_by_role("button", name="Create connect link").click()
    connect_url = page.get_by_test_id("connect-url").inner_text()
    user = new_page()
    user.goto(connect_url)
    user.get_by_test_id("continue").click()
    user.get_by_label("E-mail").fill(email)
    user.get_by_label("Password").fill(password)
    user.get_by_role("button", name="Approve").click()
    expect(user.get_by_test_id("connect-success")).to_be_visible()

    demo.wait_for_output(rf"link connected: WHOOP member {user_id} \(reference restart-member\)")

    # The demo stops and starts again on the same ports and instance folder.
    demo.stop()
    assert "Stopped:" in demo.output()
    demo.start()
    assert "was not loaded" not in demo.output()

    # A workout logged at WHOOP after the restart: the sandbox still knows the grant,
    # so its webhook arrives, and the worker fetches the workout.
    now = datetime.now(UTC)
    stamp = "%Y-%m-%dT%H:%M:%S.000Z"
    with requests.Session() as http:
        http.trust_env = False
        created = http.post(
            f"{demo.sandbox}/_sandbox/members/{user_id}/workouts",
            json={
                "start": (now - timedelta(hours=2)).strftime(stamp),
                "end": (now - timedelta(hours=1)).strftime(stamp),
            },
            timeout=10,
        )
        assert created.status_code == 201, created.text
        workout_id = created.json()["id"]
        log = http.get(f"{demo.sandbox}/_sandbox/webhooks?wait=1", timeout=30).json()
    sent = [d for d in log if d["event"].get("id") == workout_id]
    assert [d["status"] for d in sent] == ["delivered"], sent

    page.goto(f"{demo.admin}/links?q=restart-member")
    page.get_by_role("link", name="restart-member").click()
    expect(page.get_by_test_id("link-status")).to_have_text("active")
    timeline = page.get_by_test_id("timeline")
    _reload_until(page, timeline.locator('[data-kind="webhook"]', has_text="workout.updated"))

    demo.wait_for_output(rf"webhook processed: workout\.updated for WHOOP member {user_id}")

    # And its tokens still refresh: the sandbox kept the refresh token too.
    page.get_by_role("button", name="Refresh tokens now").click()
    _reload_until(page, timeline.locator('[data-kind="token_refresh"]'))
    expect(page.get_by_test_id("token-health")).to_contain_text("succeeded")
    expect(page.get_by_test_id("link-status")).to_have_text("active")
