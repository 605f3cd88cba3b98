"""The end user's pages in a real browser: a clean address after WHOOP, and German pages."""

from __future__ import annotations

import re

from tests.e2e.conftest import STAGING_HOST

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or fails under CI) with the reason
    expect = None


def _approve(page, live, member) -> None:
    """Continue to WHOOP (the sandbox), sign in and approve."""
    page.get_by_test_id("continue").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(live.sandbox.auth_url)}\?"))
    page.get_by_label("E-mail").fill(member.email)
    page.get_by_label("Password").fill(member.password)
    page.get_by_role("button", name="Approve").click()


def test_connect_ends_on_a_clean_address(live, staging, new_page):
    member = live.sandbox.state.create_member(days=2)
    url = live.connect_url("staging", "clean-address-user")
    page = new_page()
    page.goto(url)
    _approve(page, live, member)

    success = page.get_by_test_id("connect-success")
    expect(success.get_by_role("heading")).to_have_text("Your WHOOP account is connected")
    public = live.public(STAGING_HOST)
    expect(page).to_have_url(re.compile(rf"^{re.escape(public)}/connect/done/[^?#]+$"))
    assert "code=" not in page.url and "state=" not in page.url
    result_url = page.url

    # A reload shows the same page; the link itself now says it is already connected.
    page.reload()
    expect(success).to_have_attribute("data-reason", "connected")
    page.goto(url)
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Your WHOOP account is already connected"
    )
    expect(page.get_by_test_id("continue")).to_have_count(0)

    # Someone else given the result URL learns nothing about the member.
    stranger = new_page()
    stranger.goto(result_url)
    body = stranger.locator("body")
    expect(body).to_contain_text("Your WHOOP account is connected")
    for private in (member.email, str(member.user_id), "clean-address-user"):
        expect(body).not_to_contain_text(private)


def test_german_connect_page_from_the_session_language(live, staging, new_page):
    """``language: "de"`` on the session: German, even in a browser that asks for English."""
    member = live.sandbox.state.create_member(days=2)
    page = new_page(locale="en-US")
    page.goto(live.connect_url("staging", "german-session-user", language="de"))
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Verbinden Sie Ihr WHOOP-Konto mit Acme Health"
    )
    expect(page.get_by_test_id("shared")).to_contain_text("Ihren Namen und Ihre E-Mail-Adresse")
    expect(page.get_by_test_id("continue")).to_have_text("Weiter zu WHOOP")
    _approve(page, live, member)
    expect(page.get_by_test_id("connect-success").get_by_role("heading")).to_have_text(
        "Ihr WHOOP-Konto ist verbunden"
    )


def test_german_connect_page_from_accept_language(live, staging, new_page):
    """No language on the session: a browser set to German gets German pages."""
    page = new_page(locale="de-DE")
    url = live.connect_url("staging", "german-browser-user")
    page.goto(url)
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.get_by_test_id("continue")).to_have_text("Weiter zu WHOOP")
    page.goto(f"{live.public(STAGING_HOST)}/connect/not-a-token")
    expect(page.get_by_role("heading", level=1)).to_have_text("Dieser Verbindungslink ist ungültig")
    # The same link in an English browser is English.
    english = new_page(locale="en-GB")
    english.goto(url)
    expect(english.get_by_test_id("continue")).to_have_text("Continue to WHOOP")
