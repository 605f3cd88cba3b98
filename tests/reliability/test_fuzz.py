"""Bad input at scale: hypothesis throws random and half-valid input at the webhook
endpoints, the JSON API and the wizard forms.

Every test sends a fixed number of generated requests (``derandomize=True``: the same
requests on every run, no example database) and checks that no answer is a 5xx, that
every answer is a status the endpoint documents, and that a refused request leaves the
stored rows exactly as they were. The app runs with ``TESTING``, so an exception in a view
propagates out of the test client: a crash fails these tests as surely as a 500 does.

Each test builds its fixtures once and runs hypothesis inside, so the rows a test seeds
(and the rows earlier examples added) are what later examples must leave alone.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote, unquote

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.support import validate_response
from tests.factories import make_connection, make_link
from tests.helpers import csrf_from, post_webhook
from whoopadmin.api import service as api_service
from whoopadmin.api.openapi import document
from whoopadmin.auth.models import StaffUser
from whoopadmin.connect import service as connect_service
from whoopadmin.domains import normalise_hostname
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection
from whoopadmin.web import hostname_of
from whoopadmin.webhooks.service import MAX_BODY, MEMBER_TYPES, TEST_TYPE
from whoopadmin.webhooks.signatures import partner_signature, whoop_signature

PUBLIC = "https://whoop.acme.test"
USER = 424242  # a linked member
OTHER_USER = 5150  # nobody
PARTNER_SECRET = "partner-signing-secret-fuzz"
KNOWN_TRACE = "known-good-trace"
KNOWN_EVENT = {
    "user_id": USER,
    "id": "9b2f8c2e-0000-4000-8000-000000000001",
    "type": "sleep.updated",
    "trace_id": KNOWN_TRACE,
}

FORM_EXAMPLES = {
    "credentials": 80,
    "subdomain": 80,
    "issuer": 80,
    "settings": 80,
    "connect_links": 80,
}
NEW_CONNECTION_EXAMPLES = 60


def fuzz(examples: int):
    """Hypothesis settings for this file: reproducible, no example database, no deadline."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# --------------------------------------------------------------------------- strategies

NASTY = [
    "",
    " ",
    "\t\r\n ",
    "\x00",
    "a\x00b",
    "\u202eevil",
    "\ufeff",
    "\u200b",
    "\u2028",
    "😀",
    "é",
    "İ",
    "ß",
    "Ａｃｍｅ",
    "%00",
    "%",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "null",
    "NaN",
    "-1",
    "0",
    "9" * 400,
    "xn--",
    "xn--zz",
    "localhost",
]
CONTROL = st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Co"]), min_size=1, max_size=8)


def long_text(max_size):
    """One character repeated 100 to ``max_size`` times (cheap to generate, cheap to print)."""
    return st.builds(lambda ch, n: ch * n, st.characters(codec="utf-8"), st.integers(100, max_size))


def texts(long_max):
    """Text that can be sent in a form or a URL: anything but lone surrogates."""
    return st.one_of(
        st.text(max_size=40),
        CONTROL,
        st.sampled_from(NASTY),
        long_text(long_max),
        st.tuples(st.text(max_size=10), CONTROL, st.text(max_size=10)).map("".join),
    )


TEXT = texts(6000)
# Text only JSON can carry: lone surrogates (escaped by json.dumps, invalid once decoded).
SURROGATES = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)
# Shorter long strings: a dozen of them, escaped, must still fit a 64 kB body now and then.
SHORT_TEXT = texts(1000)
JSON_TEXT = st.one_of(SHORT_TEXT, SURROGATES, st.tuples(SHORT_TEXT, SURROGATES).map("".join))


def printable(min_size: int, max_size: int):
    """Text that ``str.isprintable`` accepts (letters, marks, numbers, punctuation, symbols)."""
    alphabet = st.one_of(st.characters(categories=["L", "M", "N", "P", "S"]), st.just(" "))
    return st.text(alphabet, min_size=min_size, max_size=max_size)


INTS = st.one_of(
    st.integers(),
    st.sampled_from(
        [0, -1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63), 10**100]
    ),
)
JSON_LEAVES = st.one_of(st.none(), st.booleans(), INTS, st.floats(), JSON_TEXT)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(JSON_TEXT, kids, max_size=4),
    max_leaves=12,
)


def encode_json(value, mode: str) -> bytes:
    """JSON bytes: escaped ASCII, raw UTF-8 (lone surrogates make it invalid), or UTF-16."""
    if mode == "ascii":
        return json.dumps(value).encode()
    if mode == "utf-16":
        return json.dumps(value).encode("utf-16")
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


JSON_MODES = st.sampled_from(["ascii", "ascii", "ascii", "utf-8", "utf-16"])
RAW_BODIES = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"",
            b"{",
            b"}",
            b"null",
            b"[]",
            b'""',
            b"\xef\xbb\xbf{}",
            b"\xff\xfe{\x00}\x00",
            b"\x00" * 16,
            b'{"user_id": 1e999, "id": "x", "type": "sleep.updated", "trace_id": "t"}',
            b'{"user_id": NaN, "id": "x", "type": "sleep.updated", "trace_id": "t"}',
            b'{"user_id": ' + b"1" * 5000 + b', "id": "x", "type": "t", "trace_id": "t"}',
            b'{"user_id": 424242, "user_id": "x", "id": "x", "type": "t", "trace_id": "t"}',
            b'{"user_id": 424242, "id": "x", "type": "t", "trace_id": "t"} trailing',
            b'{"a": "\\ud800"}',
            b'{"a": "\\u0000"}',
        ]
    ),
)

# --------------------------------------------------------------------------- database helpers


def rows(app, table: str) -> list[dict]:
    """Every row of ``table`` as a dict, in id order."""
    with app.app_context():
        t = db.metadata.tables[table]
        return [dict(r) for r in db.session.execute(sa.select(t).order_by(t.c.id)).mappings()]


def snapshot(app, *tables: str) -> dict[str, list[dict]]:
    return {table: rows(app, table) for table in tables}


def only_changed(before: dict, after: dict) -> set[str]:
    """The column names whose values differ between two snapshots of one row."""
    return {key for key in before if before[key] != after[key]}


def assert_json_error(response) -> None:
    """A 4xx answered as JSON with a machine code and a human message."""
    assert response.mimetype == "application/json", (response.status, response.data[:200])
    body = json.loads(response.data)
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("message"), str) and body["message"], body


# --------------------------------------------------------------------------- 1. webhooks

MEMBER_ROUTES = ("subdomain", "client_id")
KNOWN_ROUTES = (*MEMBER_ROUTES, "partner")


def _wild(values):
    return st.one_of(JSON_VALUES, st.sampled_from(values))


GOOD_EVENTS = st.fixed_dictionaries(
    {
        "user_id": st.sampled_from([USER, USER, OTHER_USER]),
        "id": st.one_of(printable(1, 128), st.integers(1, 2**63)),
        "type": st.one_of(
            st.sampled_from([*sorted(MEMBER_TYPES), "cycle.updated", TEST_TYPE]), printable(1, 64)
        ),
        # A few fixed trace ids, the known event's among them: redeliveries must not
        # overwrite what was stored.
        "trace_id": st.one_of(printable(1, 128), st.sampled_from([KNOWN_TRACE, "dup-1", "dup-2"])),
    }
)
EVENT_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "user_id": _wild([USER, OTHER_USER, True, str(USER), float(USER), -USER, 2**63, 0]),
        "id": _wild(["", "x" * 129, "a\x00b", 12, True]),
        "type": _wild([*sorted(MEMBER_TYPES), TEST_TYPE, "", "x" * 65, "sleep.updated\n"]),
        "trace_id": _wild(["", "t" * 129, "dup-1", KNOWN_TRACE, "t\x00"]),
        "extra": JSON_VALUES,
    },
)
# Partner events: strings stay printable (see test_partner_event_with_unstorable_text_...).
PARTNER_WILD = st.one_of(
    st.none(), st.booleans(), INTS, st.floats(), printable(0, 300), st.lists(INTS, max_size=3)
)
PARTNER_EVENTS = st.fixed_dictionaries(
    {},
    optional={
        "event_type": st.one_of(printable(1, 100), PARTNER_WILD),
        "resource_id": st.one_of(printable(1, 200), st.integers(-(10**30), 10**30), PARTNER_WILD),
        "extra": PARTNER_WILD,
    },
)
HEADER_TEXT = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=60)
HOSTS = st.from_regex(
    r"[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){0,3}(:[1-9][0-9]{0,3})?", fullmatch=True
).filter(lambda host: host.split(":")[0] != "whoop.acme.test")
CLIENT_IDS = st.one_of(TEXT.filter(bool), st.sampled_from(["%00", "..", "a/b"]))


SIGNINGS = ["valid"]
BAD_SIGNINGS = [
    "absent",
    "no_timestamp",
    "no_signature",
    "random",
    "wrong_secret",
    "stale",
    "tampered",
    "far_future",
    "unicode_digits",
]
# Partner signatures carry no timestamp; the first three modes are correct signatures.
PARTNER_SIGNINGS = ["valid", "upper_case", "padded", "absent", "random", "wrong_secret", "tampered"]
PARTNER_VALID = set(PARTNER_SIGNINGS[:3])
MEMBER_BODIES = {
    "good": GOOD_EVENTS,
    "event": EVENT_LIKE,
    "json": JSON_VALUES,
    "raw": RAW_BODIES,
}
PARTNER_BODIES = {
    "good": st.fixed_dictionaries(
        {
            "event_type": printable(1, 100),
            "resource_id": st.one_of(printable(1, 200), st.integers(-(10**30), 10**30)),
        }
    ),
    "event": PARTNER_EVENTS,
    "json": JSON_VALUES.filter(lambda v: not isinstance(v, dict)),
    "raw": RAW_BODIES,
}


@st.composite
def webhook_cases(draw, routes, kinds, signings):
    """One webhook request: where it goes, its body, and how (or whether) it is signed.

    An ``oversize`` body is a well-formed event padded past MAX_BODY when it is sent
    (a 64 kB value in the example's repr is of no use to anyone).
    """
    route = draw(st.sampled_from(routes))
    kind = draw(st.sampled_from(kinds))
    bodies = PARTNER_BODIES if route == "partner" else MEMBER_BODIES
    value = draw(bodies.get(kind, bodies["good"]))
    if kind == "raw":
        body = value
    elif kind in ("good", "oversize"):
        body = encode_json(value, "ascii")
    else:
        body = encode_json(value, draw(JSON_MODES))
    signing = draw(st.sampled_from(signings))
    random_headers = signing in ("random", "unicode_digits")
    return {
        "route": route,
        "kind": kind,
        "event": value if kind == "good" else None,
        "body": body,
        "signing": signing,
        "headers": (draw(HEADER_TEXT), draw(HEADER_TEXT)) if random_headers else None,
        "content_type": draw(
            st.sampled_from(
                [
                    None,
                    "application/json",
                    "application/x-www-form-urlencoded",
                    "multipart/form-data; boundary=x",
                    "text/plain; charset=utf-16",
                ]
            )
        ),
        "client_id": draw(CLIENT_IDS) if route == "unknown_client" else None,
        "host": draw(HOSTS) if route == "unknown_host" else None,
    }


# (what, examples, routes, body kinds, signing modes): 300 requests in all.
WEBHOOK_RUNS = [
    ("signed well-formed events", 90, MEMBER_ROUTES, ["good"], SIGNINGS),
    ("signed malformed bodies", 70, MEMBER_ROUTES, ["event", "json", "raw"], SIGNINGS),
    ("bad signatures", 50, MEMBER_ROUTES, ["good", "event", "json", "raw"], BAD_SIGNINGS),
    (
        "partner webhooks",
        50,
        ["partner"],
        ["good", "event", "json", "raw"],
        PARTNER_SIGNINGS,
    ),
    (
        "unknown connections, oversize bodies",
        40,
        ["unknown_client", "unknown_host", *KNOWN_ROUTES],
        ["oversize", "good", "raw"],
        ["valid", "random"],
    ),
]
WEBHOOK_EXAMPLES = sum(run[1] for run in WEBHOOK_RUNS)


def member_headers(case, secret: str) -> dict[str, str]:
    body, signing = case["body"], case["signing"]
    now = int(time.time() * 1000)
    stamp = str(now)
    if signing == "stale":
        stamp = str(now - 6 * 60 * 1000)
    elif signing == "far_future":
        stamp = "9" * 16
    signed_secret = "not-the-client-secret" if signing == "wrong_secret" else secret
    signed_body = body + b" " if signing == "tampered" else body
    headers = {
        "X-WHOOP-Signature-Timestamp": stamp,
        "X-WHOOP-Signature": whoop_signature(signed_secret, stamp, signed_body),
    }
    if signing == "absent":
        headers = {}
    elif signing == "no_timestamp":
        del headers["X-WHOOP-Signature-Timestamp"]
    elif signing == "no_signature":
        del headers["X-WHOOP-Signature"]
    elif signing == "random":
        headers = dict(zip(headers, case["headers"], strict=True))
    elif signing == "unicode_digits":
        # Latin-1 superscripts are digits to str.isdigit, but int() refuses them.
        headers["X-WHOOP-Signature-Timestamp"] = "¹²³"
    return headers


def partner_headers(case) -> dict[str, str]:
    body, signing = case["body"], case["signing"]
    if signing == "absent":
        return {}
    if signing == "random":
        return {"WHOOP-Signed": case["headers"][1]}
    secret = "not-the-signing-secret" if signing == "wrong_secret" else PARTNER_SECRET
    signature = partner_signature(secret, body + b" " if signing == "tampered" else body)
    if signing == "upper_case":
        signature = signature.upper()  # hex digits in either case
    elif signing == "padded":
        signature = f"  {signature}\t"  # pasted whitespace is trimmed
    return {"WHOOP-Signed": signature}


def member_expectation(case) -> set[int]:
    """What a well-behaved endpoint may answer to a request on a known connection."""
    if len(case["body"]) > MAX_BODY:
        return {413}
    if case["signing"] != "valid":
        return {401}
    if case["kind"] == "good":
        event = case["event"]
        return {200} if event["user_id"] == USER or event["type"] == TEST_TYPE else {404}
    return {200, 400, 404}


def partner_expectation(case) -> set[int]:
    if len(case["body"]) > MAX_BODY:
        return {413}
    if case["signing"] not in PARTNER_VALID:
        return {401}
    try:
        data = json.loads(case["body"])
    except (ValueError, UnicodeDecodeError):
        return {400}
    resource = data.get("resource_id") if isinstance(data, dict) else None
    if (
        isinstance(data, dict)
        and isinstance(data.get("event_type"), str)
        and isinstance(resource, str | int)
        and not isinstance(resource, bool)
    ):
        return {204}
    return {400}


@pytest.fixture
def hooked(configured_app):
    """A live connection with a linked member, a partner signing secret, and one stored event."""
    with configured_app.app_context():
        make_link(whoop_user_id=USER)
        connection = db.session.scalar(sa.select(Connection))
        connection.webhook_signing_secret = PARTNER_SECRET
        db.session.commit()
    response = post_webhook(
        configured_app.test_client(), configured_app.whoop_app.client_secret, KNOWN_EVENT
    )
    assert response.status_code == 200 and response.json == {"status": "accepted"}
    return configured_app


def test_webhook_fuzz(hooked):
    """Injected: 300 webhook requests to ``/hooks/whoop/push`` (on the subdomain),
    ``/hooks/whoop/push/<client_id>``, ``/hooks/whoop/partner``, unknown client ids and
    unknown hosts. Bodies: random bytes, random JSON (nested, unicode, lone surrogates,
    NaN, huge ints, UTF-16), event-shaped objects whose fields have the wrong types or
    control characters, oversize bodies, and well-formed events. Signatures: correct,
    absent, half-absent, random header text, the wrong secret, stale, far-future,
    Latin-1 digits as timestamp, over a different body.

    Expected: 300 answers, 0 of them >= 500; each one the status its case allows (401
    for every bad signature, 413 for every oversize body...); the known-good event stored
    before fuzzing is byte-for-byte unchanged; the table holds exactly that event plus the
    well-formed events answered 200/204 (no duplicates, no overwrites); and the rejection
    counter grew by exactly the number of refusals on the known connection.
    """
    app = hooked
    client = app.test_client()
    secret, client_id = app.whoop_app.client_secret, app.whoop_app.client_id
    known_row = [r for r in rows(app, "webhook_events") if r["trace_id"] == KNOWN_TRACE]
    assert len(known_row) == 1
    rejected_before = sum(r["count"] for r in rows(app, "webhook_rejections"))
    expected_rows = {KNOWN_TRACE: ("sleep.updated", KNOWN_EVENT["id"], USER)}
    statuses: Counter[int] = Counter()
    refused_on_connection = 0

    def send(case):
        nonlocal refused_on_connection
        route, body = case["route"], case["body"]
        if case["kind"] == "oversize":
            case = dict(case, body=body + b" " * (MAX_BODY + 1 - len(body)))
            body = case["body"]
        base, path = PUBLIC, "/hooks/whoop/push"
        if route == "client_id":
            base, path = "http://localhost", f"/hooks/whoop/push/{client_id}"
        elif route == "unknown_client":
            base, path = "http://localhost", f"/hooks/whoop/push/{quote(case['client_id'])}"
        elif route == "unknown_host":
            base = f"https://{case['host']}"
        elif route == "partner":
            path = "/hooks/whoop/partner"
        headers = partner_headers(case) if route == "partner" else member_headers(case, secret)
        if case["content_type"]:
            headers["Content-Type"] = case["content_type"]
        response = client.post(path, data=body, base_url=base, headers=headers)
        status = response.status_code
        statuses[status] += 1
        assert status < 500, (case, response.data[:300])

        if route == "unknown_host" and not hostname_of(case["host"]):
            assert status == 400, (case, status)  # no host name at all ("-a", "0.1")
        elif route in ("unknown_host", "unknown_client"):
            # 400: a NUL in the path. An oversize body may be refused before the lookup.
            allowed = {404, 413} if len(body) > MAX_BODY else {400, 404}
            assert status in allowed, (case, status)
        elif route == "partner":
            assert status in partner_expectation(case), (case, status, response.data)
        else:
            assert status in member_expectation(case), (case, status, response.data)
        if status == 204:
            assert response.data == b""
        else:
            assert response.mimetype == "application/json", (status, response.data[:200])
        if status >= 400:
            assert_json_error(response)
            if route in KNOWN_ROUTES:
                refused_on_connection += 1
            return

        # Accepted: work out which row it stored (or that it was a redelivery).
        data = json.loads(body)
        if route == "partner":
            trace = "partner:" + hashlib.sha256(body).hexdigest()[:64]
            stored = (data["event_type"][:64], str(data["resource_id"])[:128], None)
            assert expected_rows.setdefault(trace, stored) == stored
            return
        object_id = str(data["id"])
        outcome = response.json["status"]
        if data["trace_id"] in expected_rows:
            assert outcome == "duplicate", (case, response.json)
            return
        if data["type"] == TEST_TYPE:
            assert outcome == "test received", (case, response.json)
        else:
            known = data["type"] in MEMBER_TYPES
            assert outcome == ("accepted" if known else "ignored"), (case, response.json)
        expected_rows[data["trace_id"]] = (data["type"], object_id, data["user_id"])

    sent = {}
    for what, examples, routes, kinds, signings in WEBHOOK_RUNS:
        already = sum(statuses.values())
        fuzz(examples)(given(case=webhook_cases(routes, kinds, signings))(send))()
        sent[what] = sum(statuses.values()) - already

    assert sent == {what: examples for what, examples, *_ in WEBHOOK_RUNS}
    assert sum(statuses.values()) == WEBHOOK_EXAMPLES == 300, statuses
    assert not [s for s in statuses if s >= 500], statuses
    # Every kind of refusal and acceptance was exercised.
    assert {200, 204, 400, 401, 404, 413} <= set(statuses), statuses
    after = rows(app, "webhook_events")
    assert [r for r in after if r["trace_id"] == KNOWN_TRACE] == known_row
    stored = {r["trace_id"]: (r["type"], r["object_id"], r["whoop_user_id"]) for r in after}
    assert len(after) == len(stored) == len(expected_rows)
    assert stored == expected_rows
    rejected_after = sum(r["count"] for r in rows(app, "webhook_rejections"))
    assert rejected_after - rejected_before == refused_on_connection


# --------------------------------------------------------------------------- 2. the API

API_PATHS = document()["paths"]
OFFSETS = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-(24 * 60 - 1), 24 * 60 - 1)
)
AWARE = st.datetimes(
    min_value=datetime.min, max_value=datetime.max, timezones=st.one_of(st.just(UTC), OFFSETS)
)
# Dates at the ends of what datetime holds: converting them to UTC, or stepping back 30
# days from them, overflows.
EDGE_DATES = [
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-05:00",
    "0001-01-02T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999+00:00",
]
DATES = st.one_of(
    st.sampled_from(EDGE_DATES),
    AWARE.map(lambda d: d.isoformat()),
    AWARE.map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.datetimes().map(lambda d: d.isoformat()),  # no time zone
    st.sampled_from(
        [
            "2026-01-01T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01",
            "20260101T000000Z",
            "2026-01-01T00:00:00+24:00",
            "yesterday",
            "Z",
            "",
        ]
    ),
)
DATE_STRINGS = st.one_of(DATES, JSON_TEXT)
FORM_URLS = st.one_of(
    st.sampled_from(
        [
            "https://app.acme.test/whoop/done?x=1",
            "https://app.acme.test:443/x",
            "https://app.acme.test:99999/x",
            "https://user@app.acme.test/x",
            "http://app.acme.test/x",
            "https://evil.example/x",
            "acmehealth://whoop/failed",
            "javascript:alert(1)",
            "//app.acme.test/x",
            "https://[::1/x",
        ]
    ),
    st.builds(lambda s: f"https://app.acme.test/{s}", TEXT),
    TEXT,
)
URLS = st.one_of(FORM_URLS, JSON_TEXT)
CONNECT_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "connection": _wild(["production", " PRODUCTION ", "staging", 1, 0, -1, 2**31, 2**63]),
        "reference_id": st.one_of(JSON_TEXT, st.just("user-42"), JSON_VALUES),
        "success_redirect_url": st.one_of(URLS, JSON_VALUES),
        "failure_redirect_url": st.one_of(URLS, JSON_VALUES),
        "language": st.one_of(st.sampled_from(["en", "en-GB", "EN-gb-x-y", "e"]), JSON_VALUES),
        "expires_in": st.one_of(
            st.sampled_from([59, 60, 900, 604800, 604801, 3.5, "900", True]), INTS
        ),
        "extra": JSON_VALUES,
    },
)
BACKFILL_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "start": st.one_of(DATE_STRINGS, JSON_VALUES),
        "end": st.one_of(DATE_STRINGS, JSON_VALUES),
        "days": JSON_VALUES,
    },
)
QUERY_KEYS = st.sampled_from(
    ["reference_id", "reference_id", "limit", "cursor", "status", "start", "end", "connection"]
)
QUERY_VALUES = st.one_of(TEXT, INTS.map(str), st.sampled_from(["user-42", "-1", "1e9"]))
RAW_QUERIES = st.sampled_from(
    ["reference_id=%00", "reference_id=%ff%fe", "%", "reference_id", "a=b=c&&", "=x", "%zz"]
)


# Nesting deeper than Python's recursion limit: json.loads raises RecursionError.
DEEP_BODIES = st.sampled_from(
    [b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000, b"[" * 100000]
)


@st.composite
def json_bodies(draw, shaped, kinds=("shaped", "shaped", "json", "raw", "none")):
    """(bytes, content type) for a JSON endpoint: shaped objects, any JSON, raw bytes."""
    kind = draw(st.sampled_from(kinds))
    content_type = draw(
        st.sampled_from(["application/json"] * 4 + [None, "text/plain", "application/json; x"])
    )
    if kinds == JSON_ONLY:
        content_type = "application/json"
    if kind == "none":
        return b"", content_type
    if kind == "raw":
        return draw(st.one_of(RAW_BODIES, DEEP_BODIES)), content_type
    value = draw({"shaped": shaped, "like": BACKFILL_LIKE}.get(kind, JSON_VALUES))
    return encode_json(value, draw(JSON_MODES)), content_type


def path_ids(*known: str):
    """User ids for a path: real ones, random text (quoted or not), odd fixed ones."""
    odd = st.one_of(
        TEXT.filter(bool).map(lambda s: quote(s, safe="")),
        st.sampled_from(["%00", "..", ".", "x" * 65, "a%2Fb", "%ff", "%20", "None"]),
    )
    return st.one_of(st.sampled_from(known), odd) if known else odd


def routable(path: str) -> bool:
    """Whether the router sees ``path`` as sent: an encoded slash makes an empty segment,
    which Werkzeug merges and redirects (308) before any view runs."""
    return "%2f" not in path.lower()


def plain_id(path: str) -> bool:
    """Whether the user id in ``path`` survives the OpenAPI checker's own URL handling
    (which splits on ``?`` and ``#`` and resolves dot segments)."""
    if not path.startswith("/users/"):
        return True
    segment = unquote(path.removeprefix("/users/").removesuffix("/backfill"))
    return segment.strip() not in ("", ".", "..") and not set("?#%/") & set(segment)


CONNECT_VALID = st.fixed_dictionaries(
    {"connection": st.sampled_from(["production", 1]), "reference_id": printable(1, 60)},
    optional={
        "success_redirect_url": st.sampled_from(
            ["https://app.acme.test/done", "acmehealth://done", None]
        ),
        "language": st.sampled_from(["en", "en-GB", None]),
        "expires_in": st.integers(30, 10**6),
    },
)
BACKFILL_SHAPED = st.fixed_dictionaries({}, optional={"start": DATES, "end": DATES})
BAD_KEYS = st.one_of(
    st.sampled_from([None, "", "Bearer", "Bearer wa_nope", "Basic {key}", "Bearer {key}x"]),
    HEADER_TEXT,
)
JSON_ONLY = ("shaped",)


@st.composite
def api_requests(draw, run: str, key: str, active_uid: str, revoked_uid: str):
    """One API call of the kind ``run`` names: method, path, query, body, Authorization."""
    op = run.split(":")[0]
    if op == "bad key":
        op = draw(st.sampled_from(["create", "list", "get", "backfill"]))
    query, body, content_type = None, b"", None
    if op == "create":
        method, template, path = "POST", "/connect-sessions", "/connect-sessions"
        if run == "create: shaped":
            body, content_type = draw(
                json_bodies(st.one_of(CONNECT_VALID, CONNECT_LIKE), JSON_ONLY)
            )
        else:
            body, content_type = draw(json_bodies(CONNECT_LIKE))
    elif op == "list":
        method, template, path = "GET", "/users", "/users"
        query = draw(st.one_of(st.dictionaries(QUERY_KEYS, QUERY_VALUES, max_size=4), RAW_QUERIES))
    elif op in ("get", "delete"):
        method = "GET" if op == "get" else "DELETE"
        # Never DELETE the active link: disconnecting it is a legitimate write.
        ids = (active_uid, revoked_uid) if op == "get" else (revoked_uid,)
        template, path = "/users/{user_id}", f"/users/{draw(path_ids(*ids))}"
    elif op == "backfill":
        method, template = "POST", "/users/{user_id}/backfill"
        if run == "backfill: dates":
            uid = draw(st.sampled_from([active_uid, active_uid, active_uid, revoked_uid]))
            body, content_type = draw(json_bodies(BACKFILL_SHAPED, JSON_ONLY))
        else:
            uid = draw(path_ids(active_uid, revoked_uid))
            body, content_type = draw(json_bodies(BACKFILL_SHAPED, ("like", "json", "raw", "none")))
        path = f"/users/{uid}/backfill"
    elif op == "wrong method":
        method, path = draw(
            st.sampled_from(
                [
                    ("PUT", "/connect-sessions"),
                    ("PATCH", "/connect-sessions"),
                    ("DELETE", "/connect-sessions"),
                    ("GET", "/connect-sessions"),
                    ("POST", "/users"),
                    ("PATCH", "/users/x"),
                    ("GET", "/users/x/backfill"),
                ]
            )
        )
        template = None
        body, content_type = draw(json_bodies(JSON_VALUES))
    else:
        assert op == "unknown path", run
        method = draw(st.sampled_from(["GET", "POST", "PATCH"]))
        template = None
        path = "/" + draw(st.sampled_from(["sessions", "users/x/y/z", "keys", "", "v2"]))
    auth = f"Bearer {key}"
    if run == "bad key":
        auth = draw(BAD_KEYS)
        auth = auth.replace("{key}", key) if auth else auth
    return {
        "op": op,
        "method": method,
        "template": template,
        "path": path,
        "query": query,
        "body": body,
        "content_type": content_type,
        "auth": auth,
        "auth_ok": auth == f"Bearer {key}",
    }


# (kind of call, examples): 300 calls in all.
API_RUNS = [
    ("create: shaped", 50),
    ("create: anything", 30),
    ("list", 30),
    ("get", 25),
    ("delete", 20),
    ("backfill: dates", 60),
    ("backfill: anything", 35),
    ("bad key", 30),
    ("wrong method", 10),
    ("unknown path", 10),
]
API_EXAMPLES = sum(n for _, n in API_RUNS)


@pytest.fixture
def api_world(configured_app):
    """A live connection with redirect origins, an API key, an active and a revoked link,
    and one connect session."""
    with configured_app.app_context():
        connection = db.session.scalar(sa.select(Connection))
        connection.allowed_origins = ["https://app.acme.test"]
        connection.app_schemes = ["acmehealth"]
        db.session.commit()
        owner = db.session.scalar(sa.select(StaffUser).where(StaffUser.role == "operator"))
        _, key = api_service.create_key(owner, "fuzz")
        active = make_link(whoop_user_id=USER, reference_id="user-42", scopes="offline")
        revoked = make_link(whoop_user_id=OTHER_USER, reference_id="user-42", status="revoked")
        connect_service.create_session(
            connection,
            reference_id="user-42",
            success_redirect_url="https://app.acme.test/done",
            created_by="test",
        )
        return configured_app, key, active.uid, revoked.uid


API_TABLES = ("connections", "links", "connect_sessions", "link_events", "oauth_states")


def test_api_fuzz(api_world):
    """Injected: 300 calls to ``/api/v1``: ``POST /connect-sessions`` and
    ``POST /users/<id>/backfill`` with random JSON, connect-session- and backfill-shaped
    objects with wrong types, unknown fields, huge ints, lone surrogates, dates from year 1
    to 9999 in every UTC offset, JSON nested 5,000 deep, raw bytes and wrong content
    types; ``GET /users`` with
    random query parameters (reference_id, limit, cursor, status, dates...) and broken
    query strings; ``GET``/``DELETE /users/<id>`` and backfill with random, quoted, NUL and
    overlong ids; wrong methods, unknown paths; and missing or wrong API keys.

    Expected: 300 answers, 0 of them >= 500; every answer JSON, every 4xx with an error
    code and message; documented operations answer only the statuses the OpenAPI document
    lists, in its schemas; without a valid key, 401; and the links, connections, connect
    sessions, link events and OAuth states are unchanged by every call except a 201, which
    adds exactly the one connect session it names.
    """
    app, key, active_uid, revoked_uid = api_world
    client = app.test_client()
    statuses: Counter[int] = Counter()

    def send(call):
        before = snapshot(app, *API_TABLES)
        headers = {} if call["auth"] is None else {"Authorization": call["auth"]}
        if call["content_type"]:
            headers["Content-Type"] = call["content_type"]
        response = client.open(
            f"/api/v1{call['path']}",
            method=call["method"],
            query_string=call["query"],
            data=call["body"],
            headers=headers,
        )
        status = response.status_code
        statuses[status] += 1
        assert status < 500, (call, response.data[:300])
        # Every answer is JSON, an encoded slash in an id too (no redirect: slashes are not
        # merged under /api/v1).
        assert status != 308, call
        assert response.mimetype == "application/json", (call, status, response.data[:200])
        json.loads(response.data)
        if status >= 400:
            assert_json_error(response)

        query = call["query"]
        nul = "%00" in call["path"] or (
            "%00" in query
            if isinstance(query, str)
            else any("\x00" in value for value in (query or {}).values())
        )
        documented = call["template"] is not None and routable(call["path"])
        if call["op"] in ("wrong method", "unknown path"):
            assert status in (404, 405), (call, status)
        elif nul:
            assert status in (400, 404, 405), (call, status)
        elif not call["auth_ok"] and documented:
            assert status == 401, (call, status)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        if documented:
            allowed = API_PATHS[call["template"]][call["method"].lower()]["responses"]
            assert str(status) in allowed, (call, status, response.json)
            if plain_id(call["path"]):
                validate_response(response)

        after = snapshot(app, *API_TABLES)
        if status == 201:
            new = after["connect_sessions"][len(before["connect_sessions"]) :]
            assert [s["public_id"] for s in new] == [response.json["session_id"]]
            after["connect_sessions"] = after["connect_sessions"][: -len(new)]
        assert after == before, (call, status)

    sent = {}
    for run, examples in API_RUNS:
        already = sum(statuses.values())
        fuzz(examples)(given(call=api_requests(run, key, active_uid, revoked_uid))(send))()
        sent[run] = sum(statuses.values()) - already

    assert sent == dict(API_RUNS)
    assert sum(statuses.values()) == API_EXAMPLES == 300, statuses
    assert not [s for s in statuses if s >= 500], statuses
    assert {200, 201, 202, 400, 401, 404, 405, 409} <= set(statuses), statuses


# --------------------------------------------------------------------------- 3. the wizard

LABEL_PIECES = st.sampled_from(list("abcxyz0129-_*.é☃ßİ") + ["xn--", "\x00", " ", "\u200b"])
HOSTNAMES = st.one_of(
    st.lists(st.lists(LABEL_PIECES, max_size=70).map("".join), min_size=1, max_size=5).map(
        ".".join
    ),
    st.builds(
        lambda scheme, host, port, rest: f"{scheme}://{host}{port}{rest}",
        st.sampled_from(["https", "http", "HTTPS", "ftp", ""]),
        st.sampled_from(["whoop2.acme.test", "WHOOP.ACME.TEST", "[::1]", "1.2.3.4", "xn--a.b"]),
        st.sampled_from(["", ":443", ":0", ":99999", ":"]),
        st.sampled_from(["", "/", "/x?y#z", "@evil.test"]),
    ),
    st.sampled_from(
        ["whoop.acme.test", "acme.test", "whoop.acme.test.", "*.acme.test", "1.2.3.4", "a" * 300]
    ),
    TEXT,
)
ORIGIN_LINES = st.one_of(
    st.sampled_from(
        [
            "https://app.acme.test",
            "https://APP.acme.test/",
            "http://localhost:3000",
            "http://app.acme.test",
            "https://app.acme.test/path",
            "https://app.acme.test:99999",
            "https://[::1]:8443",
            "https://*.acme.test",
            "javascript:alert(1)",
            "https://user@app.acme.test",
        ]
    ),
    st.builds(lambda h: f"https://{h}", HOSTNAMES),
    TEXT,
)
SCHEME_LINES = st.one_of(
    st.sampled_from(["acmehealth", "AcmeDev://", "https", "javascript", "a", "x" * 70, "ac me"]),
    TEXT,
)


def lines(strategy):
    """Up to five values of ``strategy`` as the lines of a textarea (LF, CRLF, CR, blanks)."""
    return st.builds(
        lambda items, sep: sep.join(items),
        st.lists(strategy, max_size=5),
        st.sampled_from(["\n", "\r\n", "\r", "\n\n"]),
    )


NUMBERS = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(["1", "100000", "100001", "0", " 5 ", "٣", "½", "1_000", "1e3", "0x10"]),
    TEXT,
)
CHECKBOX = st.one_of(st.sampled_from(["y", "on", "false", ""]), TEXT)


def optional(fields: dict) -> st.SearchStrategy:
    """A form where every field may be missing."""
    return st.fixed_dictionaries({}, optional=fields)


# Per form: values it accepts, and wild values for each field.
VALID = {
    "credentials": {
        "client_id": st.from_regex(r"\s?[A-Za-z0-9_.-]{1,40}\s?", fullmatch=True),
        "client_secret": st.from_regex(r"[A-Za-z0-9_.~-]{1,60}", fullmatch=True),
        "partner_client_id": st.just(""),
    },
    "issuer": {
        "name": st.sampled_from(["_acme-challenge.whoop.acme.test", "_x1.acme.test"]),
        "type": st.sampled_from(["CNAME", "TXT"]),
        "value": st.from_regex(r"[a-z0-9]{1,10}\.validation\.test\.?", fullmatch=True),
    },
    "subdomain": {
        "hostname": st.one_of(
            st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]\.(acme|example)\.test", fullmatch=True),
            st.sampled_from(["https://WHOOP2.acme.test/connect", "whoop.acme.test:443"]),
        )
    },
    "settings": {
        "display_name": printable(1, 50).filter(str.strip),
        "allowed_origins": lines(
            st.sampled_from(["https://app.acme.test", "http://localhost:3000"])
        ),
        "app_schemes": lines(st.from_regex(r"[a-z][a-z0-9+.-]{1,20}", fullmatch=True)),
        "rate_limit_per_minute": st.integers(1, 1000).map(str),
        "rate_limit_per_day": st.integers(1000, 10**6).map(str),
        "backfill_days": st.one_of(st.integers(1, 365).map(str), st.just("")),
        "approved_by_whoop": st.sampled_from(["y", ""]),
        "member_cap": st.one_of(st.integers(1, 10_000_000).map(str), st.just("")),
    },
    "connect_links": {
        "reference_id": printable(1, 60).filter(str.strip),
        "success_redirect_url": st.sampled_from(["", "https://app.acme.test/ok", "acmehealth://x"]),
        "language": st.sampled_from(["", "en", "en-GB"]),
        "expires_in": st.integers(1, 10080).map(str),
    },
}
WILD = {
    "credentials": {
        "client_id": TEXT,
        "client_secret": TEXT,
        "partner_client_id": TEXT,
        "partner_client_secret": TEXT,
        "webhook_signing_secret": TEXT,
    },
    "issuer": {
        "name": HOSTNAMES,
        "type": st.one_of(st.sampled_from(["txt", "A", "", "CNAME "]), TEXT),
        "value": st.one_of(HOSTNAMES, TEXT, st.just('"quoted"')),
    },
    "subdomain": {"hostname": HOSTNAMES},
    "settings": {
        "display_name": TEXT,
        "allowed_origins": lines(ORIGIN_LINES),
        "app_schemes": lines(SCHEME_LINES),
        "rate_limit_per_minute": NUMBERS,
        "rate_limit_per_day": NUMBERS,
        "backfill_days": NUMBERS,
        "approved_by_whoop": CHECKBOX,
        "use_pkce": CHECKBOX,
        "member_cap": NUMBERS,
    },
    "connect_links": {
        "reference_id": TEXT,
        "success_redirect_url": FORM_URLS,
        "failure_redirect_url": FORM_URLS,
        "language": st.one_of(TEXT, st.sampled_from(["e", "en_GB", "en-GB-x-toolong"])),
        "expires_in": NUMBERS,
    },
}


@st.composite
def one_field_off(draw, form: str):
    """A submission the form accepts, with one field (or none) made wild or left out."""
    data = {name: draw(values) for name, values in VALID[form].items()}
    field = draw(st.sampled_from([None, *WILD[form]]))
    if field is not None:
        if draw(st.integers(0, 4)) == 0:
            data.pop(field, None)
        else:
            data[field] = draw(WILD[form][field])
    return data


# What a DNS check (re)writes: the subdomain step and the issuer record step both do.
DNS_COLUMNS = {
    "issuer_record",
    "status",
    "zone",
    "dns_result",
    "dns_checked_at",
    "dns_check_requested_at",
    "dns_next_check_at",
    "dns_since",
    "dns_attempts",
    "verified_at",
}

FORMS = {
    form: st.one_of(one_field_off(form), st.fixed_dictionaries({}, optional=WILD[form]))
    for form in VALID
}
# The columns each form may change when it is accepted; everything else must stay.
OWNED = {
    "credentials": {
        "client_id",
        "client_secret_sealed",
        "previous_client_secret_sealed",
        "partner_client_id",
        "partner_client_secret_sealed",
        "webhook_signing_secret_sealed",
        "secret_rotated_at",
        "credentials_check",
        "credentials_message",
        "credentials_checked_at",
    },
    "subdomain": {"hostname", "validation_token", "live_at", *DNS_COLUMNS},
    "issuer": DNS_COLUMNS,
    "settings": {
        "display_name",
        "allowed_origins",
        "app_schemes",
        "rate_limit_per_minute",
        "rate_limit_per_day",
        "approved_by_whoop",
        "member_cap",
        "backfill_days",
        "use_pkce",
    },
    "connect_links": set(),
}
ENDPOINTS = {
    "credentials": "/setup/production/credentials",
    "subdomain": "/setup/production/subdomain",
    "issuer": "/setup/production/dns/issuer",
    "settings": "/setup/production/settings",
    "connect_links": "/setup/production/connect-links",
}
# (status when accepted, status when refused): accepted forms redirect, except the
# connect-link page, which shows the new link.
ANSWERS = {name: (303, 400) for name in ENDPOINTS} | {"connect_links": (200, 400)}
WIZARD_TABLES = ("connections", "connect_sessions", "links", "audit_events")
CSRF = st.sampled_from(["good"] * 12 + ["missing", "garbage"])


def check_accepted(form: str, data: dict, before: dict, after: dict) -> None:
    """An accepted submission stored what was sent, normalised; a field left out of the
    form keeps its stored value (the forms are prefilled from the connection)."""

    def sent(field, clean=lambda value: value.strip()):
        return clean(data[field]) if field in data else before[field]

    if form == "credentials":
        assert after["client_id"] == sent("client_id")
    elif form == "subdomain":
        assert after["hostname"] == sent("hostname", normalise_hostname)
    elif form == "settings":
        assert after["display_name"] == sent("display_name")
        assert after["rate_limit_per_minute"] == sent("rate_limit_per_minute", int)
        assert after["rate_limit_per_day"] == sent("rate_limit_per_day", int)
        assert after["rate_limit_per_minute"] <= after["rate_limit_per_day"]
        assert 1 <= after["backfill_days"] <= 365
        assert after["member_cap"] is None or 1 <= after["member_cap"] <= 10_000_000
        for origin in after["allowed_origins"]:
            assert origin.startswith(("https://", "http://")) and origin.isprintable()
        for scheme in after["app_schemes"]:
            assert scheme.isascii() and scheme.islower() and ":" not in scheme


def fuzz_form(app, client, form: str, examples: int) -> Counter:
    """POST ``examples`` generated submissions of ``form``; check each; count the statuses."""
    path = ENDPOINTS[form]
    page = "/setup/production/dns" if form == "issuer" else path
    token = csrf_from(client.get(page).get_data(as_text=True))
    accepted_status, refused_status = ANSWERS[form]
    statuses: Counter[int] = Counter()

    @fuzz(examples)
    @given(data=FORMS[form], csrf=CSRF)
    def send(data, csrf):
        before = snapshot(app, *WIZARD_TABLES)
        sent = dict(data)
        if csrf != "missing":
            sent["csrf_token"] = token if csrf == "good" else "garbage"
        response = client.post(path, data=sent)
        status = response.status_code
        statuses[status] += 1
        assert status < 500, (form, data, response.data[:300])
        assert status in (accepted_status, refused_status), (form, data, status)
        after = snapshot(app, *WIZARD_TABLES)
        if status == refused_status:
            assert after == before, (form, data)
            return
        assert csrf == "good", (form, data)
        assert len(after["connections"]) == len(before["connections"]) == 1
        old, new = before["connections"][0], after["connections"][0]
        changed = only_changed(old, new)
        assert changed <= OWNED[form], (form, data, changed - OWNED[form])
        check_accepted(form, data, old, new)
        assert after["links"] == before["links"]
        new_sessions = len(after["connect_sessions"]) - len(before["connect_sessions"])
        assert new_sessions == (1 if form == "connect_links" else 0)
        assert len(after["audit_events"]) - len(before["audit_events"]) <= 1

    send()
    assert sum(statuses.values()) == examples, statuses
    assert not [s for s in statuses if s >= 500], statuses
    return statuses


@pytest.fixture
def wizard_world(configured_app, wizard):
    """A live connection with an allowed origin and app scheme, and a signed-in operator."""
    with configured_app.app_context():
        connection = db.session.scalar(sa.select(Connection))
        connection.allowed_origins = ["https://app.acme.test"]
        connection.app_schemes = ["acmehealth"]
        db.session.commit()
    return configured_app, wizard.client


def test_wizard_credentials_and_subdomain_fuzz(wizard_world):
    """Injected: 80 credentials submissions (client id and secrets: random unicode, NUL,
    control and invisible characters, whitespace, empty, up to 6,000 characters, fields
    missing), 80 subdomain submissions (random labels with unicode, underscores,
    wildcards, NUL, overlong labels, URLs with ports and paths, IP addresses) and 80
    issuer-record submissions (random names, types, values), each with a good, missing or
    garbage CSRF token.

    Expected: 240 answers, 0 of them >= 500, each 303 (accepted) or 400 (refused); after
    every refusal the connection, its connect sessions, links and audit log are
    exactly as before; an accepted one changes only its own step's columns and stores the
    normalised value that was sent.
    """
    app, client = wizard_world
    credentials = fuzz_form(app, client, "credentials", FORM_EXAMPLES["credentials"])
    # Issuer records first: their names must sit under the subdomain's parent domain.
    issuer = fuzz_form(app, client, "issuer", FORM_EXAMPLES["issuer"])
    subdomain = fuzz_form(app, client, "subdomain", FORM_EXAMPLES["subdomain"])
    # Both outcomes were reached: the generators are not all rejected at the door.
    for statuses in (credentials, subdomain, issuer):
        assert set(statuses) == {303, 400}, statuses


def test_wizard_settings_and_connect_link_fuzz(wizard_world):
    """Injected: 80 settings submissions (display name, origins and app schemes as
    multi-line text with CR/LF/CRLF separators and hostile lines, rate limits and
    backfill days as huge, negative, unicode-digit or non-numeric text, odd checkbox
    values) and 80 connect-link submissions (reference id, redirect URLs, language and
    lifetime, random and near-valid), each with a good, missing or garbage CSRF token.

    Expected: 160 answers, 0 of them >= 500; settings answer 303 or 400, connect links
    200 or 400; after every refusal nothing stored changed; an accepted settings form
    changes only the settings columns (with the limits it was sent), an accepted connect
    link adds exactly one connect session and leaves the connection alone.
    """
    app, client = wizard_world
    settings_ = fuzz_form(app, client, "settings", FORM_EXAMPLES["settings"])
    links = fuzz_form(app, client, "connect_links", FORM_EXAMPLES["connect_links"])
    assert set(settings_) == {303, 400}, settings_
    assert set(links) == {200, 400}, links


def test_wizard_new_connection_fuzz(wizard_world):
    """Injected: 60 new-connection submissions (environment and display name: random
    unicode, NUL, control characters, whitespace, very long, empty, or missing) and the
    same random environment names as the path of the credentials page.

    Expected: 60 submissions and 60 page loads, 0 answers >= 500; a submission is 303
    or 400, a page load 200 (a connection that exists) or 404; the production connection is
    never touched; each 303 adds exactly one connection named by the lower-cased, trimmed
    environment that was sent, and each 400 adds nothing.
    """
    app, client = wizard_world
    token = csrf_from(client.get("/setup/new").get_data(as_text=True))
    production = rows(app, "connections")
    statuses: Counter[int] = Counter()

    @fuzz(NEW_CONNECTION_EXAMPLES)
    @given(
        data=optional(
            {
                "environment": st.one_of(
                    TEXT, st.sampled_from(["staging", "Eu-Prod ", "-x", "production", "a" * 64])
                ),
                "display_name": st.one_of(TEXT, st.just("Acme")),
            }
        ),
        csrf=CSRF,
    )
    def send(data, csrf):
        before = rows(app, "connections")
        sent = dict(data, csrf_token=token if csrf == "good" else "garbage")
        response = client.post("/setup/new", data=sent)
        statuses[response.status_code] += 1
        assert response.status_code in (303, 400), (data, response.status_code)
        after = rows(app, "connections")
        assert after[: len(production)] == production
        if response.status_code == 400:
            assert after == before, data
        else:
            assert after[:-1] == before
            assert after[-1]["environment"] == data["environment"].strip().lower()
        environment = quote(data.get("environment", "") or "x", safe="")
        page = client.get(f"/setup/{environment}/credentials")
        statuses[page.status_code] += 1
        assert page.status_code in (200, 400, 404), (environment, page.status_code)

    send()
    assert sum(statuses.values()) == 2 * NEW_CONNECTION_EXAMPLES, statuses
    assert not [s for s in statuses if s >= 500], statuses
    assert {303, 400, 404} <= set(statuses), statuses


# --------------------------------------------------------------------------- found crashes
# Crashes the fuzzing found in whoopadmin/webhooks/service.py (fixed), pinned down here.

MEMBER_SECRET = "member-client-secret-fuzz"


@pytest.fixture
def receiving(app):
    """A connection on whoop.acme.test with a client secret and a partner signing secret."""
    with app.app_context():
        connection = make_connection(hostname="whoop.acme.test", client_secret=MEMBER_SECRET)
        connection.webhook_signing_secret = PARTNER_SECRET
        db.session.commit()
    return app.test_client()


def signed(body: bytes) -> dict[str, str]:
    """Both kinds of signature over ``body``: member and partner."""
    stamp = str(int(time.time() * 1000))
    return {
        "X-WHOOP-Signature-Timestamp": stamp,
        "X-WHOOP-Signature": whoop_signature(MEMBER_SECRET, stamp, body),
        "WHOOP-Signed": partner_signature(PARTNER_SECRET, body),
    }


@pytest.mark.parametrize("path", ["/hooks/whoop/push", "/hooks/whoop/partner"])
def test_deeply_nested_signed_webhook_is_refused(receiving, path):
    """Injected: one correctly signed body of 5,000 nested arrays. Expected: 400."""
    body = b"[" * 5000 + b"]" * 5000
    response = receiving.post(path, data=body, base_url=PUBLIC, headers=signed(body))
    assert response.status_code == 400


@pytest.mark.parametrize(
    "event",
    [
        {"event_type": "lab\ud800", "resource_id": "r-1"},
        {"event_type": "lab.created", "resource_id": "r\x00-1"},
    ],
)
def test_partner_event_with_unstorable_text_is_refused(receiving, event):
    """Injected: one correctly signed partner event with text the database cannot store
    (valid JSON: ``"\\ud800"``, ``"\\u0000"``). Expected: 400."""
    body = json.dumps(event).encode()
    response = receiving.post(
        "/hooks/whoop/partner", data=body, base_url=PUBLIC, headers=signed(body)
    )
    assert response.status_code == 400
