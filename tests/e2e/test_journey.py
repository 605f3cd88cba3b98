"""An end user connects through a connect link; support staff then see everything about it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import requests

from tests.e2e.conftest import OPERATOR, STAGING_HOST, SUPPORT, save_screenshot, sign_in

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or fails under CI) with the reason
    expect = None

REFERENCE = "member-e2e-1"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_member_connects_and_support_sees_the_link(live, staging, new_page):
    member = live.sandbox.state.create_member(days=14)
    public = live.public(STAGING_HOST)

    # The operator creates a connect link in the admin pages.
    operator = new_page()
    sign_in(operator, live, OPERATOR)
    operator.goto(f"{live.admin}/setup/staging/connect-links")
    operator.get_by_label("Reference id").fill(REFERENCE)
    operator.get_by_role("button", name="Create connect link").click()
    url_code = operator.get_by_test_id("connect-url")
    expect(url_code).to_have_text(re.compile(rf"^{re.escape(public)}/connect/"))
    connect_url = url_code.inner_text()

    # The end user opens it on the connection's own *.localhost host.
    user = new_page()
    user.goto(connect_url)
    expect(user.get_by_role("heading", level=1)).to_have_text(
        "Connect your WHOOP account to Acme Health"
    )
    shared = user.get_by_test_id("shared")
    for scope in ("read:recovery", "read:sleep", "read:workout", "offline"):
        expect(shared.locator(f'[data-scope="{scope}"]')).to_have_count(1)
    save_screenshot(user, "connect-page")
    user.get_by_test_id("continue").click()

    # WHOOP (the sandbox) asks the member to sign in and consent.
    expect(user).to_have_url(re.compile(rf"^{re.escape(live.sandbox.auth_url)}\?"))
    expect(user.get_by_role("heading", level=1)).to_contain_text("wants to access your WHOOP")
    user.get_by_label("E-mail").fill(member.email)
    user.get_by_label("Password").fill(member.password)
    user.get_by_role("button", name="Approve").click()

    # Back on the connection's host: the hosted success page, at an address without
    # WHOOP's code and state.
    expect(user.get_by_test_id("connect-success")).to_contain_text(
        "Your WHOOP account is connected"
    )
    expect(user).to_have_url(re.compile(rf"^{re.escape(public)}/connect/done/[^?#]+$"))

    # The worker backfills (run here, in-process).
    live.run_jobs("backfill")

    # Support staff find the link and see it active, with synced data and charts.
    support = new_page()
    sign_in(support, live, SUPPORT)
    support.get_by_role("link", name="Links", exact=True).click()
    support.get_by_placeholder("Reference id, WHOOP user id, e-mail or link id").fill(REFERENCE)
    support.get_by_role("button", name="Find").click()
    rows = support.get_by_test_id("links").locator("tr[data-link]")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text(str(member.user_id))
    rows.get_by_role("link", name=REFERENCE).click()

    expect(support.get_by_test_id("link-status")).to_have_text("active")
    summary = support.get_by_test_id("sync-summary")
    for kind in ("sleep", "recovery", "cycle", "workout"):
        row = summary.locator(f'tr[data-type="{kind}"]')
        expect(row).to_have_count(1)
        expect(row.locator("td").nth(1)).not_to_have_text("0")
    for chart in ("Recovery (30 days)", "HRV (30 days)"):  # charts with data in them
        expect(support.locator(f'h2:text-is("{chart}") + svg polyline')).to_have_count(1)
    timeline = support.get_by_test_id("timeline")
    expect(timeline.locator('[data-kind="connect"]')).to_have_count(1)
    expect(timeline.locator('[data-kind="job"]').first).to_be_visible()
    expect(support.get_by_test_id("raw-record").first).to_be_visible()

    # The member logs a workout at WHOOP: the sandbox sends a signed webhook.
    now = datetime.now(UTC)
    workout = requests.post(
        f"{live.sandbox.url}/_sandbox/members/{member.user_id}/workouts",
        json={"start": _iso(now - timedelta(hours=2)), "end": _iso(now - timedelta(hours=1))},
        timeout=10,
    )
    assert workout.status_code == 201, workout.text
    workout_id = workout.json()["id"]
    workout.close()
    assert live.sandbox.state.dispatcher.wait_idle(10)
    deliveries = [
        d for d in live.sandbox.state.dispatcher.public() if d["event"].get("id") == workout_id
    ]
    assert [d["status"] for d in deliveries] == ["delivered"], deliveries
    trace_id = deliveries[0]["event"]["trace_id"]
    live.run_jobs("webhooks")

    support.reload()
    hook = timeline.locator('[data-kind="webhook"]', has_text="workout.updated")
    expect(hook).to_have_count(1)
    expect(timeline).to_contain_text(trace_id)
    expect(support.locator("body")).not_to_contain_text(live.whoop_app(STAGING_HOST).client_secret)
    save_screenshot(support, "support-link", down_to=timeline)
