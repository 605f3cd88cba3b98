"""Signed v2 webhooks on data changes, retries, duplicates, drops, and partner webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest


def _verify_whoop(secret: str, request: dict) -> dict:
    """Recompute the signature independently: base64(HMAC-SHA256(secret, ts + raw body))."""
    headers = {k.lower(): v for k, v in request["headers"].items()}
    ts = headers["x-whoop-signature-timestamp"]
    assert ts.isdigit() and len(ts) == 13  # milliseconds
    assert abs(int(ts) - time.time() * 1000) < 60_000
    expected = base64.b64encode(
        hmac.new(secret.encode(), ts.encode() + request["body"], hashlib.sha256).digest()
    ).decode()
    assert hmac.compare_digest(headers["x-whoop-signature"], expected)
    return json.loads(request["body"])


@pytest.fixture
def linked(whoop, receiver):
    """An app with two webhook URLs and a member who granted it access."""
    app = whoop.new_app(webhook_urls=[receiver.url + "/a", receiver.url + "/b"])
    member = whoop.new_member(days=20)
    token = whoop.tokens(app, member)["access_token"]
    return app, member, token


def _now_minus(hours: float) -> str:
    from whoopadmin.sandbox.data import iso_ms

    return iso_ms(int((time.time() - hours * 3600) * 1000))


def test_sleep_create_update_delete(whoop, receiver, linked, validate):
    app, member, token = linked
    uid = member["user_id"]
    # Free the latest cycle's main sleep so a new one can be created.
    cycles = whoop.api(token, "/v2/cycle", limit=3).json()["records"]
    old = whoop.api(token, f"/v2/cycle/{cycles[1]['id']}/sleep").json()
    whoop.control("DELETE", f"/members/{uid}/sleeps/{old['id']}", 204)
    got = receiver.wait_for(4)
    events = [_verify_whoop(app["client_secret"], r) for r in got]
    assert sorted((e["type"], r["path"]) for e, r in zip(events, got, strict=True)) == [
        ("recovery.deleted", "/hooks/a"),
        ("recovery.deleted", "/hooks/b"),
        ("sleep.deleted", "/hooks/a"),
        ("sleep.deleted", "/hooks/b"),
    ]
    assert all(e["id"] == old["id"] and e["user_id"] == uid for e in events)
    assert isinstance(events[0]["user_id"], int) and isinstance(events[0]["id"], str)
    assert len({e["trace_id"] for e in events}) == 4
    assert whoop.api(token, f"/v2/activity/sleep/{old['id']}").status_code == 404
    assert whoop.api(token, f"/v2/cycle/{cycles[1]['id']}/recovery").status_code == 404

    created = whoop.control(
        "POST",
        f"/members/{uid}/sleeps",
        201,
        json={"start": old["start"], "end": old["end"], "score_state": "PENDING_SCORE"},
    )
    events = [_verify_whoop(app["client_secret"], r) for r in receiver.wait_for(8)[4:]]
    assert sorted(e["type"] for e in events) == ["recovery.updated"] * 2 + ["sleep.updated"] * 2
    assert {e["id"] for e in events} == {created["id"]}  # recovery events carry the sleep UUID
    recovery = validate(whoop.api(token, f"/v2/cycle/{cycles[1]['id']}/recovery")).json()
    assert recovery["sleep_id"] == created["id"] and recovery["score_state"] == "PENDING_SCORE"
    assert validate(whoop.api(token, f"/v2/activity/sleep/{created['id']}")).json() == created

    whoop.control(
        "PATCH", f"/members/{uid}/sleeps/{created['id']}", 200, json={"score_state": "SCORED"}
    )
    events = [_verify_whoop(app["client_secret"], r) for r in receiver.wait_for(12)[8:]]
    assert sorted(e["type"] for e in events) == ["recovery.updated"] * 2 + ["sleep.updated"] * 2
    sleep = validate(whoop.api(token, f"/v2/activity/sleep/{created['id']}")).json()
    assert sleep["score_state"] == "SCORED" and "score" in sleep
    validate(whoop.api(token, "/v2/recovery", limit=25))
    recovery = validate(whoop.api(token, f"/v2/cycle/{cycles[1]['id']}/recovery")).json()
    assert recovery["score_state"] == "SCORED" and "score" in recovery


def test_nap_has_no_recovery_events(whoop, receiver, linked):
    app, member, token = linked
    nap = whoop.control(
        "POST",
        f"/members/{member['user_id']}/sleeps",
        201,
        json={"start": _now_minus(3), "end": _now_minus(2.5), "nap": True},
    )
    events = [_verify_whoop(app["client_secret"], r) for r in receiver.wait_for(2)]
    time.sleep(0.1)
    assert len(receiver.received) == 2
    assert [e["type"] for e in events] == ["sleep.updated", "sleep.updated"]
    assert whoop.api(token, f"/v2/activity/sleep/{nap['id']}").json()["nap"] is True


def test_workout_events(whoop, receiver, linked, validate):
    app, member, token = linked
    uid = member["user_id"]
    workout = whoop.control(
        "POST",
        f"/members/{uid}/workouts",
        201,
        json={"start": _now_minus(2), "end": _now_minus(1), "sport_name": "cycling"},
    )
    assert validate(whoop.api(token, f"/v2/activity/workout/{workout['id']}")).json() == workout
    assert workout["sport_name"] == "cycling"
    whoop.control(
        "PATCH", f"/members/{uid}/workouts/{workout['id']}", 200, json={"score_state": "UNSCORABLE"}
    )
    whoop.control("DELETE", f"/members/{uid}/workouts/{workout['id']}", 204)
    events = [_verify_whoop(app["client_secret"], r) for r in receiver.wait_for(6)]
    assert sorted(e["type"] for e in events) == ["workout.deleted"] * 2 + ["workout.updated"] * 4
    assert {e["id"] for e in events} == {workout["id"]}
    assert whoop.api(token, f"/v2/activity/workout/{workout['id']}").status_code == 404


def test_failures_are_retried_five_times(whoop, make_receiver):
    flaky = make_receiver([500, 503])
    dead = make_receiver([500] * 10)
    app = whoop.new_app(webhook_urls=[flaky.url, dead.url])
    member = whoop.new_member(days=5)
    token = whoop.tokens(app, member)["access_token"]
    workout = whoop.api(token, "/v2/activity/workout", limit=1).json()["records"][0]
    whoop.control("DELETE", f"/members/{member['user_id']}/workouts/{workout['id']}", 204)
    assert len(flaky.wait_for(3)) == 3
    assert len(dead.wait_for(6)) == 6
    deliveries = whoop.control("GET", "/webhooks?wait=1", 200)
    by_url = {d["url"]: d for d in deliveries}
    assert by_url[flaky.url]["status"] == "delivered"
    assert [a["status_code"] for a in by_url[flaky.url]["attempts"]] == [500, 503, 204]
    assert by_url[dead.url]["status"] == "failed" and len(by_url[dead.url]["attempts"]) == 6
    # Each attempt is the same event (same trace id), freshly signed.
    bodies = {r["body"] for r in dead.received}
    assert len(bodies) == 1
    for r in dead.received:
        _verify_whoop(app["client_secret"], r)
    assert "client_secret" not in json.dumps(deliveries)
    assert app["client_secret"] not in json.dumps(deliveries)


def test_retry_schedule_is_configurable(whoop, make_receiver):
    slow = make_receiver([500])
    whoop.control("PATCH", "/config", 200, json={"webhook_retry_delays": [0.6, 0.6]})
    app = whoop.new_app(webhook_urls=[slow.url])
    member = whoop.new_member(days=5)
    token = whoop.tokens(app, member)["access_token"]
    workout = whoop.api(token, "/v2/activity/workout", limit=1).json()["records"][0]
    whoop.control("DELETE", f"/members/{member['user_id']}/workouts/{workout['id']}", 204)
    assert len(slow.wait_for(1)) == 1
    time.sleep(0.3)
    assert len(slow.received) == 1  # not retried before the configured delay
    assert len(slow.wait_for(2)) == 2


def test_duplicates_and_drops(whoop, receiver, linked):
    _app, member, token = linked
    uid = member["user_id"]
    workouts = whoop.api(token, "/v2/activity/workout", limit=2).json()["records"]
    whoop.control("PUT", "/faults", 200, json={"webhook_duplicate_rate": 1.0})
    whoop.control("DELETE", f"/members/{uid}/workouts/{workouts[0]['id']}", 204)
    events = [json.loads(r["body"]) for r in receiver.wait_for(4)]
    assert len(events) == 4
    assert len({e["trace_id"] for e in events}) == 2  # each delivered twice, same trace id

    whoop.control("PUT", "/faults", 200, json={"webhook_drop_rate": 1.0})
    whoop.control("DELETE", f"/members/{uid}/workouts/{workouts[1]['id']}", 204)
    deliveries = whoop.control("GET", "/webhooks?wait=1", 200)
    assert [d["status"] for d in deliveries[-2:]] == ["dropped", "dropped"]
    time.sleep(0.1)
    assert len(receiver.received) == 4


def test_no_webhooks_without_or_after_a_grant(whoop, receiver, linked):
    _app, member, token = linked
    stranger = whoop.new_member(days=5)
    sleep = whoop.control("GET", f"/members/{stranger['user_id']}", 200)
    assert sleep["counts"]["workouts"] > 0
    whoop.api(token, "/v2/user/access", method="DELETE")
    for m in (member, stranger):
        whoop.control(
            "POST",
            f"/members/{m['user_id']}/workouts",
            201,
            json={"start": _now_minus(2), "end": _now_minus(1)},
        )
    assert whoop.control("GET", "/webhooks?wait=1", 200) == []
    assert receiver.received == []


def test_partner_token_and_signed_partner_webhooks(whoop, receiver, http, validate):
    partner = whoop.control("POST", "/partners", 201, json={"webhook_urls": [receiver.url]})
    token_url = whoop.sb.api_base + "/v2/partner/token"
    body = {
        "grant_type": "client_credentials",
        "client_id": partner["client_id"],
        "client_secret": partner["client_secret"],
        "scope": "whoop-partner/token",
    }
    resp = validate(http.post(token_url, json=body))
    token = resp.json()
    assert token["token_type"] == "bearer" and token["expires_in"] == 3600
    auth = {"Authorization": f"Bearer {token['access_token']}"}

    assert (
        validate(
            http.post(whoop.sb.api_base + "/v2/partner/development/add-test-data", headers=auth)
        ).status_code
        == 204
    )
    hook = receiver.wait_for(1)[0]
    expected = hmac.new(
        partner["signing_secret"].encode(), hook["body"], hashlib.sha256
    ).hexdigest()
    headers = {k.lower(): v for k, v in hook["headers"].items()}
    assert headers["whoop-signed"] == expected
    event = json.loads(hook["body"])
    assert event["event_type"] == "lab_requisition.created"

    req = validate(
        http.get(f"{whoop.sb.api_base}/v2/partner/requisition/{event['resource_id']}", headers=auth)
    ).json()
    sr_id = req["service_requests"][0]["id"]
    validate(http.get(f"{whoop.sb.api_base}/v2/partner/service-request/{sr_id}", headers=auth))
    patched = validate(
        http.patch(
            f"{whoop.sb.api_base}/v2/partner/service-request/{sr_id}/status",
            json={"task_business_status": "Specimen collected"},
            headers=auth,
        )
    ).json()
    assert patched["task_business_status"] == "Specimen collected"
    assert (
        validate(
            http.patch(
                f"{whoop.sb.api_base}/v2/partner/requisition/{req['id']}/status",
                json={"task_business_status": "Results pending", "reason": "lab"},
                headers=auth,
            )
        ).status_code
        == 204
    )
    assert (
        validate(
            http.post(
                f"{whoop.sb.api_base}/v2/partner/service-request/{sr_id}/results",
                json={
                    "status": "final",
                    "observations": [{"code": "HGB", "value_numeric": 14.1, "unit": "g/dL"}],
                },
                headers=auth,
            )
        ).status_code
        == 201
    )

    # Custom partner events from the control API, signed the same way.
    whoop.control(
        "POST",
        f"/partners/{partner['client_id']}/events",
        202,
        json={"event_type": "service_request.updated", "resource_id": sr_id},
    )
    hook = receiver.wait_for(2)[1]
    assert {k.lower(): v for k, v in hook["headers"].items()}["whoop-signed"] == hmac.new(
        partner["signing_secret"].encode(), hook["body"], hashlib.sha256
    ).hexdigest()

    # Errors: bad credentials, form body, wrong scope, other partners, expiry.
    assert validate(http.post(token_url, json=dict(body, client_secret="nope"))).status_code == 401
    assert http.post(token_url, data=body).status_code == 400
    assert http.post(token_url, json=dict(body, scope="read:profile")).status_code == 400
    other = whoop.control("POST", "/partners", 201, json={})
    other_token = http.post(
        token_url,
        json=dict(body, client_id=other["client_id"], client_secret=other["client_secret"]),
    ).json()
    denied = http.get(
        f"{whoop.sb.api_base}/v2/partner/requisition/{req['id']}",
        headers={"Authorization": f"Bearer {other_token['access_token']}"},
    )
    assert validate(denied).status_code == 404
    assert (
        http.get(f"{whoop.sb.api_base}/v2/partner/requisition/not-a-uuid", headers=auth).status_code
        == 400
    )
    whoop.control("POST", "/clock", 200, json={"advance_seconds": 3601})
    assert (
        http.get(
            f"{whoop.sb.api_base}/v2/partner/requisition/{req['id']}", headers=auth
        ).status_code
        == 401
    )


def test_in_process_sandbox_keeps_webhooks_on_loopback(whoop, receiver):
    app = whoop.new_app(
        webhook_urls=["https://whoop.acme.test/hooks/whoop/push", "http://10.0.0.1/x", receiver.url]
    )
    member = whoop.new_member(days=5)
    token = whoop.tokens(app, member)["access_token"]
    workout = whoop.api(token, "/v2/activity/workout", limit=1).json()["records"][0]
    whoop.control("DELETE", f"/members/{member['user_id']}/workouts/{workout['id']}", 204)
    deliveries = whoop.control("GET", "/webhooks?wait=1", 200)
    assert {d["url"]: d["status"] for d in deliveries} == {
        "https://whoop.acme.test/hooks/whoop/push": "blocked",
        "http://10.0.0.1/x": "blocked",
        receiver.url: "delivered",
    }
    assert all(d["attempts"] == [] for d in deliveries if d["status"] == "blocked")


def test_a_members_webhooks_can_be_switched_off_and_on(whoop, receiver, linked):
    _app, member, _token = linked
    uid = member["user_id"]
    other = whoop.new_member(days=5)
    assert whoop.control("GET", f"/members/{uid}", 200)["webhooks"] is True
    assert (
        whoop.control("PATCH", f"/members/{uid}", 200, json={"webhooks": False})["webhooks"]
        is False
    )
    span = {"start": _now_minus(2), "end": _now_minus(1)}
    whoop.control("POST", f"/members/{uid}/workouts", 201, json=span)
    deliveries = whoop.control("GET", "/webhooks?wait=1", 200)
    assert [d["status"] for d in deliveries] == ["suppressed", "suppressed"]  # both URLs
    time.sleep(0.1)
    assert receiver.received == []
    whoop.control("PATCH", f"/members/{uid}", 200, json={"webhooks": True})
    whoop.control("POST", f"/members/{uid}/workouts", 201, json=span)
    assert len(receiver.wait_for(2)) == 2
    # Bad input is a 4xx with a reason, never a 500; nothing changes.
    for body in ({}, {"webhooks": "no"}, {"webhooks": None}, {"webhooks": False, "x": 1}, []):
        answer = whoop.control("PATCH", f"/members/{uid}", 400, json=body)
        assert answer["error"] == "invalid_request"
    whoop.control("PATCH", "/members/123456789", 404, json={"webhooks": False})
    whoop.control("PATCH", "/members/abc", 404, json={"webhooks": False})
    assert whoop.control("GET", f"/members/{uid}", 200)["webhooks"] is True
    assert whoop.control("GET", f"/members/{other['user_id']}", 200)["webhooks"] is True
