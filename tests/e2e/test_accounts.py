"""A new operator sets up two-factor sign-in in the browser, then manages their sessions."""

from __future__ import annotations

import re

import pyotp

from tests.e2e.conftest import OPERATOR, enter_code, sign_in
from tests.factories import make_user

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or fails under CI) with the reason
    expect = None

NEWCOMER = ("newcomer@example.com", "a-newcomers-passphrase")


def test_new_operator_enrols_and_signs_in_with_codes(live, new_page):
    from whoopadmin.extensions import db

    with live.app.app_context():
        make_user("operator", NEWCOMER[0], password=NEWCOMER[1])
        db.session.remove()
    page = new_page()
    page.goto(f"{live.admin}/login")
    page.get_by_label("E-mail").fill(NEWCOMER[0])
    page.get_by_label("Password").fill(NEWCOMER[1])
    page.get_by_role("button", name="Sign in").click()
    # Any page leads to the set-up first.
    expect(page).to_have_url(re.compile(r"/account/mfa/setup$"))
    page.goto(f"{live.admin}/staff")
    expect(page).to_have_url(re.compile(r"/account/mfa/setup$"))
    expect(page.get_by_test_id("qr").locator("svg")).to_be_visible()
    secret = page.get_by_test_id("totp-secret").inner_text().replace(" ", "")
    assert pyotp.TOTP(secret).now().isdigit()
    live.totp_secrets[NEWCOMER[0]] = secret
    page.get_by_label("Code from the app").fill(live.totp_code(NEWCOMER[0]))
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    codes = page.get_by_test_id("recovery-codes").locator("li")
    expect(codes).to_have_count(10)
    recovery = codes.first.inner_text()
    page.get_by_role("link", name="I have saved them").click()
    expect(page.get_by_test_id("whoami")).to_contain_text(NEWCOMER[0])
    page.get_by_role("button", name="Sign out").click()

    # Next time: password, then the app's code; a recovery code works once.
    sign_in(page, live, NEWCOMER)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("E-mail").fill(NEWCOMER[0])
    page.get_by_label("Password").fill(NEWCOMER[1])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Authentication code").fill(recovery)
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_contain_text("9 are left")
    expect(page.get_by_test_id("whoami")).to_contain_text(NEWCOMER[0])


def test_sign_out_another_browser_from_the_sessions_page(live, new_page):
    laptop, phone = new_page(), new_page()
    sign_in(laptop, live, OPERATOR)
    sign_in(phone, live, OPERATOR)
    laptop.get_by_test_id("whoami").click()
    rows = laptop.get_by_test_id("session-row")
    expect(laptop.get_by_test_id("current-session")).to_have_count(1)
    count = rows.count()
    assert count >= 2
    other = rows.filter(has_not=laptop.get_by_test_id("current-session")).first
    expect(other).to_contain_text("Chrome")
    laptop.get_by_role("button", name="Sign out everywhere else").click()
    expect(laptop.get_by_role("alert")).to_contain_text("Signed out")
    expect(laptop.get_by_test_id("session-row")).to_have_count(1)
    phone.reload()
    expect(phone).to_have_url(re.compile(r"/login"))
    # The phone signs in again with a fresh code.
    phone.get_by_label("E-mail").fill(OPERATOR[0])
    phone.get_by_label("Password").fill(OPERATOR[1])
    phone.get_by_role("button", name="Sign in").click()
    enter_code(phone, live, OPERATOR[0])
    expect(phone.get_by_test_id("whoami")).to_contain_text(OPERATOR[0])
