"""The end user's pages: a clean address after the callback, honest outcomes, the result
page's id (opaque, short-lived, bound to its host), and error pages for end users."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from tests.helpers import PUBLIC, query
from whoopadmin.audit import utcnow
from whoopadmin.connect import hosted
from whoopadmin.connect.models import ConnectSession, Link
from whoopadmin.crypto import associated_data
from whoopadmin.extensions import db
from whoopadmin.sealing import keyring
from whoopadmin.setup.models import Connection

HOSTED = {"success_redirect_url": None, "failure_redirect_url": None}


def _link(app) -> Link:
    with app.app_context():
        link = db.session.scalar(sa.select(Link))
        db.session.expunge(link)
        return link


def test_callback_lands_on_a_clean_address(configured_app, end_user, new_session, member):
    response = end_user.connect(new_session(**HOSTED))
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith("/connect/done/")
    assert "?" not in location and "code" not in location and "state" not in location
    page = end_user.client.get(location, base_url=PUBLIC)
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert 'data-testid="connect-success"' in html
    assert "Your WHOOP account is connected" in html
    assert "Acme Health can now read your WHOOP data" in html


def test_result_page_leaks_nothing_to_someone_else(configured_app, end_user, new_session, member):
    """A second browser (no cookies) given the result URL learns nothing about the member."""
    location = end_user.connect(new_session(**HOSTED)).headers["Location"]
    link = _link(configured_app)
    with configured_app.app_context():
        stored = db.session.get(Link, link.id)
        personal = [stored.email, stored.first_name, stored.last_name, "user-42", link.uid]
        session_id = db.session.scalar(sa.select(ConnectSession.public_id))
    stranger = configured_app.test_client()
    page = stranger.get(location, base_url=PUBLIC)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    result_id = location.removeprefix("/connect/done/")
    for value in [*personal, str(member.user_id), session_id]:
        assert value not in html
        assert value not in result_id
    # Opaque: the id is a sealed value, not readable JSON or a signed plaintext.
    blob = result_id.split(".")[-1]
    raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
    assert b"connected" not in raw and b'"o"' not in raw


@pytest.mark.parametrize(
    "mangle",
    [
        lambda rid: rid[:-1] + ("A" if rid[-1] != "A" else "B"),  # one character flipped
        lambda rid: rid[:-10],  # truncated
        lambda rid: rid.split(".", 1)[1],  # no version
        lambda rid: "v1.00000000." + rid.split(".")[-1],  # unknown key id
        lambda rid: rid + "x" * 500,  # overlong
        lambda rid: "v1.ä.ö",  # Unicode
        lambda rid: "..",
        lambda rid: "v1",
    ],
)
def test_tampered_result_ids_are_404(configured_app, end_user, new_session, mangle):
    location = end_user.connect(new_session(**HOSTED)).headers["Location"]
    result_id = location.removeprefix("/connect/done/")
    page = end_user.client.get(f"/connect/done/{mangle(result_id)}", base_url=PUBLIC)
    assert page.status_code == 404
    html = page.get_data(as_text=True)
    assert 'data-testid="error-page"' in html and "Page not found" in html
    assert "connect-success" not in html


def test_result_id_of_another_connection_is_404(configured_app, connection_id):
    """An id sealed for one connection's host does not open on another's."""
    with configured_app.test_request_context():
        other = hosted.seal_result(SimpleNamespace(id=connection_id + 1), "connected", None)
        mine = hosted.seal_result(SimpleNamespace(id=connection_id), "connected", None)
    client = configured_app.test_client()
    assert client.get(f"/connect/done/{other}", base_url=PUBLIC).status_code == 404
    assert client.get(f"/connect/done/{mine}", base_url=PUBLIC).status_code == 200
    # Result pages exist only on a connection's host.
    assert client.get(f"/connect/done/{mine}").status_code == 404


def test_result_page_is_short_lived(configured_app, connection_id):
    def sealed(age: int) -> str:
        payload = json.dumps({"o": "connected", "l": "de", "t": int(time.time()) - age})
        aad = associated_data("connect_results", str(connection_id), "result")
        with configured_app.app_context():
            return keyring().seal(payload, aad)

    client = configured_app.test_client()
    fresh = client.get(f"/connect/done/{sealed(60)}", base_url=PUBLIC)
    assert fresh.status_code == 200 and "Ihr WHOOP-Konto ist verbunden" in fresh.text
    old = client.get(f"/connect/done/{sealed(hosted.RESULT_LIFETIME + 60)}", base_url=PUBLIC)
    assert old.status_code == 410
    assert "Diese Seite ist abgelaufen" in old.text  # in the language the result carried
    assert "verbunden" not in old.text.replace("Verbindung", "")
    future = client.get(f"/connect/done/{sealed(-3600)}", base_url=PUBLIC)
    assert future.status_code == 410


def test_failure_result_page(configured_app, end_user, new_session):
    page = end_user.landing(end_user.connect(new_session(**HOSTED), action="deny"))
    assert page.status_code == 200
    assert 'data-reason="access_denied"' in page.text
    assert "Your WHOOP account was not connected" in page.text
    assert "open the link again" in page.text


def test_back_button_after_a_connect_says_already_connected(configured_app, end_user, new_session):
    """The callback URL replayed (back button, reload) after it worked is no failure."""
    location = end_user.consent(end_user.start(new_session(**HOSTED)))
    first = end_user.landing(end_user.callback(location))
    assert 'data-reason="connected"' in first.text
    again = end_user.landing(end_user.callback(location))
    assert 'data-reason="already_connected"' in again.text
    assert "was not connected" not in again.text


def test_replay_to_a_failure_url_keeps_its_reason(configured_app, end_user, new_session):
    """The operator's failure URL still gets the exact reason code."""
    location = end_user.consent(end_user.start(new_session()))
    end_user.callback(location)
    again = end_user.callback(location)
    assert query(again.headers["Location"])["reason"] == "state_replayed"


def test_used_link_whose_link_was_revoked_is_not_already_connected(
    configured_app, end_user, new_session
):
    from whoopadmin.connect.service import disconnect

    token = new_session()
    end_user.connect(token)
    with configured_app.app_context():
        disconnect(db.session.scalar(sa.select(Link)), "test")
    page = end_user.open(token)
    assert page.status_code == 410
    assert 'data-reason="session_used"' in page.text
    assert "This connect link was already used" in page.text


def test_used_link_that_did_not_connect(configured_app, end_user, new_session):
    """A link used up by a failed exchange is "already used", never "already connected"."""
    token = new_session()
    state = query(end_user.consent(end_user.start(token)))["state"]
    end_user.client.get(
        "/auth/whoop/oauth2", query_string={"state": state, "code": "nope"}, base_url=PUBLIC
    )
    page = end_user.open(token)
    assert page.status_code == 410 and 'data-reason="session_used"' in page.text


def test_expired_link_says_expired(configured_app, end_user, new_session):
    token = new_session()
    with configured_app.app_context():
        db.session.scalar(sa.select(ConnectSession)).expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    page = end_user.open(token)
    assert page.status_code == 410
    assert "This connect link has expired" in page.text
    assert "was not connected" not in page.text


# --------------------------------------------------------------------------- languages


def _open(end_user, token, accept=None):
    headers = {"Accept-Language": accept} if accept is not None else {}
    return end_user.client.get(f"/connect/{token}", base_url=PUBLIC, headers=headers)


def test_german_session_shows_german_pages(configured_app, end_user, new_session):
    token = new_session(language="de", **HOSTED)
    page = _open(end_user, token, accept="en-US,en;q=0.9")  # the session's language wins
    assert page.status_code == 200
    assert '<html lang="de">' in page.text
    assert "Verbinden Sie Ihr WHOOP-Konto mit Acme Health" in page.text
    assert "Weiter zu WHOOP" in page.text and "Ihren Namen und Ihre E-Mail-Adresse" in page.text
    assert "Continue to WHOOP" not in page.text
    # …and the result page after WHOOP, even in a browser that asks for English.
    result = end_user.landing(end_user.connect(token))
    assert "Ihr WHOOP-Konto ist verbunden" in result.text and '<html lang="de">' in result.text
    assert "Ihr WHOOP-Konto ist bereits verbunden" in _open(end_user, token).text


@pytest.mark.parametrize("tag", ["de-AT", "de-CH", "DE", "de-XX"])
def test_regional_german_tags_fall_back_to_german(configured_app, end_user, new_session, tag):
    page = _open(end_user, new_session(language=tag))
    assert "Weiter zu WHOOP" in page.text and '<html lang="de">' in page.text


def test_accept_language_chooses_when_the_session_names_none(configured_app, end_user, new_session):
    token = new_session()
    assert "Weiter zu WHOOP" in _open(end_user, token, accept="de-DE,de;q=0.9,en;q=0.5").text
    assert "Continue to WHOOP" in _open(end_user, token, accept="fr-FR,en;q=0.8,de;q=0.1").text
    plain = _open(end_user, token)
    assert "Continue to WHOOP" in plain.text  # no header: English
    assert "Accept-Language" in plain.headers["Vary"]  # caches keep one copy per language
    english = new_session(language="en")
    assert "Continue to WHOOP" in _open(end_user, english, accept="de").text


JUNK_ACCEPT = [
    "",
    "*",
    "de;q=abc",
    "de;q=-1",
    "de;q=2",
    ";;;,,,",
    "xx-yy-zz-" * 500,
    "de-" + "x" * 5000,
    "de\tq=1",
    "ÿÿÿ",
    "Ã¤Ã¶Ã¼,de",
    "de;q=0.5;q=0.9",
    "en-US,de;q=1e400",
    "=de",
]


@pytest.mark.parametrize("header", JUNK_ACCEPT)
def test_junk_accept_language_is_never_a_500(configured_app, end_user, new_session, header):
    token = new_session()
    page = _open(end_user, token, accept=header)
    assert page.status_code == 200
    assert "Continue to WHOOP" in page.text or "Weiter zu WHOOP" in page.text
    missing = end_user.client.get(
        "/no-such-page", base_url=PUBLIC, headers={"Accept-Language": header}
    )
    assert missing.status_code == 404


def test_error_pages_on_the_connection_host_are_for_end_users(configured_app, end_user):
    english = end_user.client.get("/no-such-page", base_url=PUBLIC)
    assert english.status_code == 404
    assert "Page not found" in english.text and "Acme Health" in english.text
    assert "dashboard" not in english.text.lower() and "whoopadmin" not in english.text
    german = end_user.client.get(
        "/no-such-page", base_url=PUBLIC, headers={"Accept-Language": "de"}
    )
    assert german.status_code == 404 and "Seite nicht gefunden" in german.text
    assert '<html lang="de">' in german.text
    wrong_method = end_user.client.delete("/connect/abc", base_url=PUBLIC)
    assert wrong_method.status_code == 405 and "dashboard" not in wrong_method.text.lower()
    # The admin host keeps the admin error page.
    admin = configured_app.test_client().get("/no-such-page")
    assert admin.status_code == 404 and "Back to the dashboard" in admin.text


def test_a_refused_form_is_an_end_user_400(configured_app, end_user, new_session):
    """No CSRF token: refused before the view runs, so the browser's language decides."""
    token = new_session()
    response = end_user.client.post(
        f"/connect/{token}/start", base_url=PUBLIC, headers={"Accept-Language": "de"}
    )
    assert response.status_code == 400
    assert "Etwas ist schiefgelaufen" in response.text and '<html lang="de">' in response.text


def test_unknown_link_in_german(configured_app, end_user, new_session):
    new_session()
    page = _open(end_user, "nope", accept="de")
    assert page.status_code == 404 and "Dieser Verbindungslink ist ungültig" in page.text


def test_a_host_of_no_connection_keeps_the_admin_error_page(configured_app):
    """A 404 on a host that is no connection's (and no admin host) stays the admin page."""
    with configured_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Connection.id))) == 1
    other = configured_app.test_client().get("/nope", base_url="https://other.acme.test")
    assert other.status_code == 404 and "Back to the dashboard" in other.text
