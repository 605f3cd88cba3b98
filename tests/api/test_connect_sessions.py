"""POST /api/v1/connect-sessions: the happy path, and every bad input as a stable JSON error."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.api.support import HOST, ApiClient, count, rows_containing
from whoopadmin.audit import utcnow
from whoopadmin.connect.models import ConnectSession
from whoopadmin.connect.service import token_hash
from whoopadmin.extensions import db
from whoopadmin.printable import is_printable
from whoopadmin.setup.models import Connection

URL_RE = re.compile(rf"^https://{re.escape(HOST)}/connect/([A-Za-z0-9_-]{{40,}})$")
BASE = {"connection": "production", "reference_id": "user-42"}


@pytest.fixture
def api(live_app, api_key):
    return ApiClient(live_app, api_key)


def create(api, body=None, **kwargs):
    if body is None:
        kwargs.setdefault("json", BASE)
    return api.post("/connect-sessions", **({"json": body} if body is not None else {}), **kwargs)


def assert_refused(app, api, body, status, code, field=None, **kwargs):
    """The API refuses ``body`` with this status, error code and field; nothing is created."""
    with app.app_context():
        before = count(ConnectSession)
    response = create(api, body, **kwargs)
    assert response.status_code == status, (body, response.json)
    assert response.json["error"] == code, (body, response.json)
    assert response.json["message"]
    if field is not None:
        assert response.json.get("field") == field, (body, response.json)
    with app.app_context():
        assert count(ConnectSession) == before, body
    return response


def test_happy_path(live_app, api):
    before = utcnow()
    response = create(
        api,
        {
            **BASE,
            "success_redirect_url": "https://app.acme.test/whoop/done?x=1",
            "failure_redirect_url": "acmehealth://whoop/failed",
            "language": "en-GB",
            "expires_in": 3600,
        },
    )
    assert response.status_code == 201
    body = response.json
    assert set(body) == {"session_id", "url", "expires_at"}
    token = URL_RE.match(body["url"]).group(1)
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert expires_at.utcoffset() == timedelta(0)
    assert before + timedelta(seconds=3599) <= expires_at <= utcnow() + timedelta(seconds=3601)

    with live_app.app_context():
        session = db.session.scalar(sa.select(ConnectSession))
        assert session.public_id == body["session_id"]
        assert session.reference_id == "user-42"
        assert session.success_redirect_url == "https://app.acme.test/whoop/done?x=1"
        assert session.failure_redirect_url == "acmehealth://whoop/failed"
        assert session.language == "en-GB"
        assert session.used_at is None and session.link_id is None
        assert re.fullmatch(r"api-key:backend \(wa_[\w-]{7}\)", session.created_by)
        assert session.token_hash == token_hash(token)
        # The token itself is stored nowhere.
        assert rows_containing(token) == []

    # The link opens on the connection's host.
    page = live_app.test_client().get(f"/connect/{token}", base_url=f"https://{HOST}")
    assert page.status_code == 200


def test_defaults(live_app, api):
    before = utcnow()
    response = create(api, {"connection": "production", "reference_id": "u"})
    assert response.status_code == 201
    expires_at = datetime.fromisoformat(response.json["expires_at"])
    assert before + timedelta(seconds=899) <= expires_at <= utcnow() + timedelta(seconds=901)
    with live_app.app_context():
        session = db.session.scalar(sa.select(ConnectSession))
        assert session.success_redirect_url is None and session.failure_redirect_url is None
        assert session.language is None


def test_null_and_empty_optionals_mean_absent(live_app, api):
    for body in (
        {**BASE, "success_redirect_url": None, "failure_redirect_url": "", "language": None},
        {**BASE, "language": "", "expires_in": None},
    ):
        assert create(api, body).status_code == 201, body


def test_connection_by_id_or_environment(live_app, api):
    with live_app.app_context():
        connection_id = db.session.scalar(sa.select(Connection.id))
    for value in (connection_id, "production", connection_id, "production"):
        response = create(api, {"connection": value, "reference_id": "u1"})
        assert response.status_code == 201, (value, response.json)
        assert URL_RE.match(response.json["url"])
    with live_app.app_context():
        sessions = list(db.session.scalars(sa.select(ConnectSession)))
    assert len(sessions) == 4 and {s.connection_id for s in sessions} == {connection_id}
    assert len({s.public_id for s in sessions}) == len({s.token_hash for s in sessions}) == 4
    # The name exactly as the document's pattern says: no other case, no spaces.
    for value in (" production", "Production", "PRODUCTION", "production\n"):
        body = {"connection": value, "reference_id": "u1"}
        assert_refused(live_app, api, body, 400, "invalid_request", "connection")


def test_edges_that_are_accepted(live_app, api):
    accepted = [
        {**BASE, "expires_in": 60},
        {**BASE, "expires_in": 7 * 24 * 3600},
        {**BASE, "reference_id": "x" * 255},
        {**BASE, "reference_id": "ünïcödé 用户 42"},
        {**BASE, "language": "en"},
        {**BASE, "language": "de"},
        {**BASE, "language": "de-Latn-AT"},
        {**BASE, "success_redirect_url": "https://app.acme.test"},
        {**BASE, "success_redirect_url": "HTTPS://APP.ACME.TEST/Done"},
        {**BASE, "success_redirect_url": "http://localhost:3000/cb"},
        {**BASE, "success_redirect_url": "acmehealth:"},
        {**BASE, "failure_redirect_url": "AcmeHealth://x"},
    ]
    for body in accepted:
        response = create(api, body)
        assert response.status_code == 201, (body, response.json)


@pytest.mark.parametrize(
    ("kwargs", "content_type"),
    [
        ({"data": "connection=production&reference_id=u"}, "application/x-www-form-urlencoded"),
        ({"data": '{"connection": "production", "reference_id": "u"}'}, "text/plain"),
        ({"data": "{not json"}, "application/json"),
        ({"data": ""}, "application/json"),
        ({"data": b"\xff\xfe{}"}, "application/json"),
        ({"data": '"a string"'}, "application/json"),
        ({"data": "42"}, "application/json"),
        ({"data": "null"}, "application/json"),
        ({"data": '[{"connection": "production", "reference_id": "u"}]'}, "application/json"),
        # Deeper than the recursion limit: json.loads raises RecursionError, not ValueError.
        ({"data": "[" * 5000 + "]" * 5000}, "application/json"),
    ],
    ids=[
        "form",
        "text-plain",
        "broken",
        "empty",
        "bad-utf8",
        "string",
        "number",
        "null",
        "array",
        "deeply-nested",
    ],
)
def test_bodies_that_are_not_a_json_object(live_app, api, kwargs, content_type):
    response = api.post("/connect-sessions", content_type=content_type, **kwargs)
    if content_type == "application/json":
        assert response.status_code == 400
        assert response.json["error"] == "invalid_json"
    else:
        assert response.status_code == 415
        assert response.json["error"] == "unsupported_media_type"
    with live_app.app_context():
        assert count(ConnectSession) == 0


def test_unknown_fields(live_app, api):
    for body, field in (
        ({**BASE, "redirect_url": "https://app.acme.test"}, "redirect_url"),
        ({**BASE, "Reference_Id": "x"}, "Reference_Id"),
        ({**BASE, "zzz": 1, "aaa": 2}, "aaa"),
        ({**BASE, "": 1}, ""),
    ):
        response = assert_refused(live_app, api, body, 400, "unknown_field")
        assert response.json.get("field", "") == field


def test_missing_fields(live_app, api):
    assert_refused(live_app, api, {}, 400, "invalid_request", "connection")
    assert_refused(live_app, api, {"reference_id": "u"}, 400, "invalid_request", "connection")
    assert_refused(
        live_app, api, {"connection": "production"}, 400, "invalid_request", "reference_id"
    )
    for blank in ("", "   ", "\t\n"):
        body = {"connection": "production", "reference_id": blank}
        assert_refused(live_app, api, body, 400, "invalid_request", "reference_id")


def test_bad_connection_values(live_app, api):
    for value in (None, True, False, 1.0, 1.5, [], ["production"], {"id": 1}, "", "  "):
        body = {"connection": value, "reference_id": "u"}
        assert_refused(live_app, api, body, 400, "invalid_request", "connection")


def test_unknown_connection(live_app, api):
    for value in ("staging", "nope", "x" * 64, 1000, 999, 2**31 - 1):
        body = {"connection": value, "reference_id": "u"}
        assert_refused(live_app, api, body, 404, "connection_not_found", "connection")


def test_connection_values_no_connection_can_have(live_app, api):
    """Outside the document's rules (an id 1..2**31-1, or an environment name): 400."""
    for value in (
        "x" * 65,
        "x" * 500,
        "production\x00",
        "prod\ud800",
        "\u212aelvin",
        "-production",
        0,
        -1,
        2**31,
        -(2**63),
        2**63,
        10**30,
    ):
        body = {"connection": value, "reference_id": "u"}
        assert_refused(live_app, api, body, 400, "invalid_request", "connection")


def test_wrong_types(live_app, api):
    cases = [
        ("reference_id", 42),
        ("reference_id", 4.2),
        ("reference_id", True),
        ("reference_id", ["u"]),
        ("reference_id", {"id": "u"}),
        ("success_redirect_url", 1),
        ("success_redirect_url", ["https://app.acme.test"]),
        ("failure_redirect_url", False),
        ("language", 1),
        ("language", ["en"]),
        ("expires_in", True),
        ("expires_in", False),
        ("expires_in", 900.0),
        ("expires_in", 900.5),
        ("expires_in", "900"),
        ("expires_in", [900]),
        ("expires_in", {"seconds": 900}),
    ]
    for name, value in cases:
        assert_refused(live_app, api, {**BASE, name: value}, 400, "invalid_request", name)


def test_values_out_of_range(live_app, api):
    cases = [
        ("expires_in", 0),
        ("expires_in", 59),
        ("expires_in", -900),
        ("expires_in", 7 * 24 * 3600 + 1),
        ("expires_in", 10**20),
        ("reference_id", "x" * 256),
        ("reference_id", "user\n42"),
        ("reference_id", "user\x0042"),
        ("reference_id", "user\u202e42"),
        ("reference_id", "user\ud80042"),
    ]
    for name, value in cases:
        assert_refused(live_app, api, {**BASE, name: value}, 400, "invalid_request", name)


def test_non_finite_numbers(live_app, api):
    for raw in ("NaN", "Infinity", "-Infinity", "1e400"):
        data = f'{{"connection": "production", "reference_id": "u", "expires_in": {raw}}}'
        response = api.post("/connect-sessions", data=data, content_type="application/json")
        assert response.status_code == 400, raw
        assert response.json["error"] in ("invalid_json", "invalid_request")
    with live_app.app_context():
        assert count(ConnectSession) == 0


BAD_LANGUAGES = [
    "e",
    "english",
    "en_GB",
    "en-",
    "-en",
    "en GB",
    " en",
    "en--GB",
    "en-GB-toolongtag",
    "12",
    "en;q=0.9",
    "<script>",
    "en-GB\u0000",
    "ën",
]


def test_bad_language_tags(live_app, api):
    for value in BAD_LANGUAGES:
        assert_refused(
            live_app, api, {**BASE, "language": value}, 400, "invalid_request", "language"
        )


UNSUPPORTED_LANGUAGES = ["fr", "zh-Hant-TW", "xx", "eng", "fr-DE", "und"]


def test_languages_without_a_translation_are_422(live_app, api):
    """Well-formed, but no page exists in that language: a clear 422, nothing created."""
    for value in UNSUPPORTED_LANGUAGES:
        response = assert_refused(
            live_app, api, {**BASE, "language": value}, 422, "unsupported_language", "language"
        )
        assert "de, en" in response.json["message"] or "en, de" in response.json["message"]


def test_supported_languages_are_kept_as_given(live_app, api):
    for value in ("de", "DE", "de-AT", "de-XX", "en-GB"):
        response = create(api, {**BASE, "language": value})
        assert response.status_code == 201, (value, response.json)
        with live_app.app_context():
            session = db.session.scalar(
                sa.select(ConnectSession).where(
                    ConnectSession.public_id == response.json["session_id"]
                )
            )
            assert session.language == value


def test_language_with_a_trailing_newline(live_app, api):
    assert_refused(live_app, api, {**BASE, "language": "en\n"}, 400, "invalid_request", "language")


def test_long_language_tags_are_refused(live_app, api):
    live_app.config["PROPAGATE_EXCEPTIONS"] = False  # a database error becomes the 500 it is
    body = {**BASE, "language": "en-abcdefgh-abcdefgh-abcdefgh"}
    assert_refused(live_app, api, body, 400, "invalid_request", "language")


OPEN_REDIRECTS = [
    "https://evil.example/",
    "https://evil.example/https://app.acme.test",
    "javascript:alert(1)",
    "JavaScript:alert(document.domain)",
    "javascript://app.acme.test/%0aalert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "//evil.example",
    "//app.acme.test/path",
    "///evil.example",
    "/relative/path",
    "relative",
    "https://whoop.acme.test.evil.example/",
    "https://app.acme.test.evil.example/",
    "https://evil.example?https://app.acme.test",
    "https://evilapp.acme.test/",
    "https://acme.test/",
    "https://sub.app.acme.test/",
    "https://app.acme.test@evil.example/",
    "https://app.acme.test:443@evil.example/",
    "https://user:pass@app.acme.test/",
    "https://user@app.acme.test/",
    "https://evil.example\\@app.acme.test/",
    "https://evil.example\\.app.acme.test/",
    "https://app.acme.test\\@evil.example/",
    "http://app.acme.test/",
    "https://app.acme.test:8443/",
    "https://app.acme.test:99999/",
    "https://app.acme.test:abc/",
    "https://app.acme.test./",
    "https:app.acme.test/",
    "https:/app.acme.test/",
    "https:///app.acme.test/",
    "https://localhost:3000/",
    "http://localhost/",
    "http://localhost:3001/",
    "http://127.0.0.1:3000/",
    "https://[::1]:3000/",
    "evilapp://callback",
    "acmehealthx://callback",
    "acme://callback",
    "https://app.acme.test/\nhttps://evil.example",
    "https://app.acme.test/a b",
    "https://app.acme.test/\tx",
    "https://app.acme\n.test/",
    "https://app.acme.test/\r\nLocation: https://evil.example",
    "https://app.acme.test/\x00",
    "https://app.acme.test/\u2028x",
    "https://app.acme.test/\u202ex",
    "https://app.acme.test/\u200bx",
    "https://app.acme.test/\ud800",
    "https://app.acme.test/" + "a" * 2100,
    "acmehealth:/" + "a" * 2100,
]


@pytest.mark.parametrize("field", ["success_redirect_url", "failure_redirect_url"])
def test_open_redirects_are_refused(live_app, api, field):
    for url in OPEN_REDIRECTS:
        response = create(api, {**BASE, field: url})
        # Not a URL as the document describes one (spaces, control characters, too long):
        # 400. A URL, but not on an allowed origin or app scheme: 422.
        malformed = len(url) > 2048 or " " in url or not is_printable(url)
        assert response.status_code == (400 if malformed else 422), (url, response.json)
        assert response.json["field"] == field, url
        assert response.json["error"] == (
            "invalid_request" if malformed else "redirect_not_allowed"
        ), url
    with live_app.app_context():
        assert count(ConnectSession) == 0


def test_surrounding_whitespace_is_trimmed_never_stored(live_app, api):
    for url in (" https://app.acme.test/done", "https://app.acme.test/done\n", "\tacmehealth://x "):
        response = create(api, {**BASE, "success_redirect_url": url})
        if response.status_code == 201:
            with live_app.app_context():
                session = db.session.scalar(
                    sa.select(ConnectSession).where(
                        ConnectSession.public_id == response.json["session_id"]
                    )
                )
                assert session.success_redirect_url == url.strip()
        else:
            assert response.status_code == 400 and response.json["field"] == (
                "success_redirect_url"
            )


def test_redirects_need_configured_origins(configured_app, api_key):
    """With nothing configured, every redirect URL is refused; without one, links still work."""
    api = ApiClient(configured_app, api_key)
    for url in ("https://app.acme.test/", "acmehealth://x", f"https://{HOST}/"):
        assert_refused(
            configured_app,
            api,
            {**BASE, "success_redirect_url": url},
            422,
            "redirect_not_allowed",
            "success_redirect_url",
        )
    assert create(api, BASE).status_code == 201


def test_origins_set_on_the_model(configured_app, api_key):
    with configured_app.app_context():
        connection = db.session.scalar(sa.select(Connection))
        connection.allowed_origins = ["https://app.acme.test:8443"]
        connection.app_schemes = []
        db.session.commit()
    api = ApiClient(configured_app, api_key)
    assert (
        create(api, {**BASE, "success_redirect_url": "https://app.acme.test:8443/x"}).status_code
        == 201
    )
    for url in ("https://app.acme.test/x", "https://app.acme.test:443/x", "acmehealth://x"):
        assert_refused(
            configured_app,
            api,
            {**BASE, "success_redirect_url": url},
            422,
            "redirect_not_allowed",
            "success_redirect_url",
        )


def test_connection_not_set_up(live_app, api, wizard):
    wizard.create("staging", "Acme staging")
    assert_refused(
        live_app, api, {"connection": "staging", "reference_id": "u"}, 409, "connection_not_ready"
    )
    # Credentials alone are not enough: the link needs a subdomain.
    whoop_app = wizard.whoop_app("staging", "whoop-staging.acme.test")
    wizard.credentials("staging", whoop_app.client_id, whoop_app.client_secret)
    assert_refused(
        live_app, api, {"connection": "staging", "reference_id": "u"}, 409, "connection_not_ready"
    )


def test_many_sessions_for_one_reference(live_app, api):
    urls = {create(api).json["url"] for _ in range(3)}
    assert len(urls) == 3
