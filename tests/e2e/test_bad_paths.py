"""The bad paths a person hits show clear pages: wrong password, refused page, dead links."""

from __future__ import annotations

import re
from datetime import timedelta

import sqlalchemy as sa

from tests.e2e.conftest import OPERATOR, SUPPORT, enter_code, sign_in

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or fails under CI) with the reason
    expect = None


def test_wrong_password_is_refused_with_a_clear_message(live, page):
    page.goto(f"{live.admin}/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
    page.get_by_label("E-mail").fill(OPERATOR[0])
    page.get_by_label("Password").fill("not-the-password")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Sign in").click()
    assert answer.value.status == 401
    expect(page.get_by_role("alert")).to_have_text("Wrong e-mail address or password.")
    expect(page.get_by_test_id("whoami")).to_have_count(0)
    # The right password still works afterwards, and the code from the app comes next.
    page.get_by_label("Password").fill(OPERATOR[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("whoami")).to_have_count(0)
    page.get_by_label("Authentication code").fill("000000")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_contain_text("That code is not right")
    enter_code(page, live, OPERATOR[0])
    expect(page.get_by_test_id("whoami")).to_contain_text(OPERATOR[0])


def test_support_is_refused_an_operator_page(live, staging, page):
    sign_in(page, live, SUPPORT)
    nav = page.locator("nav")
    expect(nav.get_by_role("link", name="Links", exact=True)).to_be_visible()
    expect(nav.get_by_role("link", name="Connections")).to_have_count(0)
    for path in ("/setup", "/setup/staging/credentials", "/staff"):
        response = page.goto(f"{live.admin}{path}")
        assert response.status == 403, path
        error = page.get_by_test_id("error-page")
        expect(error).to_contain_text("Not allowed")
        expect(error.get_by_role("link", name="Back to the dashboard")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text(
        live.whoop_app("whoop-staging.demo.localhost").client_id
    )


def test_expired_connect_link(live, staging, page):
    from whoopadmin.audit import utcnow
    from whoopadmin.connect.models import ConnectSession
    from whoopadmin.extensions import db

    url = live.connect_url("staging", "expired-user")
    with live.app.app_context():
        session = db.session.scalar(
            sa.select(ConnectSession).where(ConnectSession.reference_id == "expired-user")
        )
        session.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
        db.session.remove()
    response = page.goto(url)
    assert response.status == 410
    problem = page.get_by_test_id("connect-problem")
    expect(problem).to_have_attribute("data-reason", "session_expired")
    expect(problem.get_by_role("heading")).to_have_text("This connect link has expired")
    expect(problem).to_contain_text("Ask Acme Health for a new link.")
    expect(page.get_by_test_id("continue")).to_have_count(0)


def test_unknown_connect_link(live, staging, page):
    response = page.goto(f"{live.public('whoop-staging.demo.localhost')}/connect/not-a-token")
    assert response.status == 404
    expect(page.get_by_test_id("connect-problem")).to_have_attribute(
        "data-reason", "invalid_session"
    )
    expect(page.get_by_test_id("connect-problem")).to_contain_text("not valid")


def test_denied_consent_after_a_wrong_password_at_whoop(live, staging, page):
    member = live.sandbox.state.create_member(days=3)
    page.goto(live.connect_url("staging", "denying-user"))
    page.get_by_test_id("continue").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(live.sandbox.auth_url)}\?"))

    # A wrong password at WHOOP: WHOOP's own page says so, and the member can retry.
    page.get_by_label("E-mail").fill(member.email)
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong e-mail or password.")

    # The member changes their mind and denies.
    page.get_by_label("Password").fill(member.password)
    page.get_by_role("button", name="Deny").click()
    problem = page.get_by_test_id("connect-problem")
    expect(problem).to_have_attribute("data-reason", "access_denied")
    expect(problem).to_contain_text("You declined to share your WHOOP data.")
    expect(page).to_have_url(
        re.compile(r"^http://whoop-staging\.demo\.localhost:\d+/connect/done/[^?#]+$")
    )


def test_certificate_step_is_honest_about_plain_http(live, staging, page):
    """Served over plain HTTP (the demo, these tests), no TLS server gets a certificate.

    The step should say so instead of "the TLS server may get a certificate ... now".
    """
    sign_in(page, live, OPERATOR)
    page.goto(f"{live.admin}/setup/staging/certificate")
    step = page.get_by_test_id("tls-allowed")
    expect(step).to_be_visible()
    text = page.locator("main").inner_text()
    assert re.search(r"plain HTTP|http://", text, re.I), text
    assert "may get a certificate" not in step.inner_text()
