"""The browser binding in a real browser: the cookie's attributes as Chromium stores them,
and an authorization finished in another browser is refused while the first one succeeds."""

from __future__ import annotations

import re
import time

from tests.e2e.conftest import STAGING_HOST

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or fails under CI) with the reason
    expect = None


def _approve(page, live, member) -> None:
    expect(page).to_have_url(re.compile(rf"^{re.escape(live.sandbox.auth_url)}\?"))
    page.get_by_label("E-mail").fill(member.email)
    page.get_by_label("Password").fill(member.password)
    page.get_by_role("button", name="Approve").click()


def _bindings(page, live) -> list[dict]:
    public = live.public(STAGING_HOST)
    return [
        c
        for c in page.context.cookies(f"{public}/auth/whoop/oauth2")
        if c["name"].startswith("whoopadmin_oauth_")
    ]


def test_binding_cookie_in_chromium_and_a_second_browser_refused(live, staging, new_page):
    victim_member = live.sandbox.state.create_member(days=3)
    other_member = live.sandbox.state.create_member(days=3)
    victim = new_page()
    victim.goto(live.connect_url("staging", "binding-e2e-1"))
    victim.get_by_test_id("continue").click()
    expect(victim).to_have_url(re.compile(rf"^{re.escape(live.sandbox.auth_url)}\?"))
    authorize_url = victim.url

    (cookie,) = _bindings(victim, live)
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False  # plain http here; https deployments get Secure
    assert cookie["domain"] == STAGING_HOST  # host-only, on the connection's host
    assert cookie["path"] == "/auth/whoop/oauth2"
    assert 0 < cookie["expires"] - time.time() <= 600
    # Scripts on the page cannot read it.
    assert "whoopadmin_oauth_" not in victim.evaluate("document.cookie")

    # Someone else opens the same WHOOP authorization in their own browser and consents:
    # WHOOP sends them back with the victim's state, but without the victim's cookie.
    intruder = new_page()
    intruder.goto(authorize_url)
    _approve(intruder, live, other_member)
    problem = intruder.get_by_test_id("connect-problem")
    expect(problem).to_have_attribute("data-reason", "state_mismatch")
    expect(problem).to_contain_text("another browser")

    # The browser that started it still finishes; the cookie is then gone.
    _approve(victim, live, victim_member)
    expect(victim.get_by_test_id("connect-success")).to_contain_text(
        "Your WHOOP account is connected"
    )
    assert _bindings(victim, live) == []
