"""The control API (``/_sandbox/...``): set up apps, members, data changes, faults and time."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from . import changes
from . import data as gen
from .oauth import with_query
from .state import PKCE_RE, SCOPES, SandboxError, SandboxState
from .web import json_body, json_response, state

bp = Blueprint("sandbox_control", __name__, url_prefix="/_sandbox")


@bp.errorhandler(SandboxError)
def sandbox_error(exc: SandboxError) -> Response:
    """Typed errors become JSON with their status."""
    return json_response({"error": exc.error, "error_description": exc.description}, exc.status)


def _bad(message: str) -> SandboxError:
    return SandboxError(400, "invalid_request", message)


def _str(body: dict, name: str, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise _bad(f"{name} is required")
        return None
    if not isinstance(value, str) or not value:
        raise _bad(f"{name} must be a non-empty string")
    return value


def _int(body: dict, name: str, low: int = 1, high: int = 2**63 - 1) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(f"{name} must be an integer between {low} and {high}")
    return value


def _bool(body: dict, name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise _bad(f"{name} must be true or false")
    return value


def _urls(body: dict, name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(f"{name} must be a list of strings")
    for url in value:
        if url != url.strip() or "://" not in url:
            raise _bad(f"{name}: {url!r} is not an absolute URL without surrounding spaces")
    return list(value)


def _only(body: dict, allowed: set[str]) -> dict:
    unknown = set(body) - allowed
    if unknown:
        raise _bad(f"unknown fields: {sorted(unknown)}")
    return body


def _user_id(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SandboxError(404, "not_found", "no such member") from None


def _app_view(sandbox: SandboxState, client_id: str) -> dict:
    app = sandbox.get_app(client_id)
    out = app.public()
    out["member_count"] = sandbox.member_count(client_id)
    out["member_ids"] = sorted(uid for (cid, uid) in sandbox.grants if cid == client_id)
    return out


@bp.get("/")
def overview() -> Response:
    """URLs, settings, clock and what exists."""
    sandbox = state()
    base = request.host_url.rstrip("/")
    with sandbox.lock:
        return json_response(
            {
                "auth_url": f"{base}/oauth/oauth2/auth",
                "token_url": f"{base}/oauth/oauth2/token",
                "api_base": f"{base}/developer",
                "now": gen.iso_ms(sandbox.clock.now_ms()),
                "config": sandbox.config.public(),
                "apps": [_app_view(sandbox, cid) for cid in sandbox.apps],
                "members": [p.public() for p in sandbox.profiles.values()],
            }
        )


@bp.get("/config")
def get_config() -> Response:
    """Current settings."""
    return json_response(state().config.public())


@bp.patch("/config")
def patch_config() -> Response:
    """Change settings (token lifetimes, range mode, last-page token, retry delays...)."""
    return json_response(state().update_config(json_body()))


# -- apps ---------------------------------------------------------------------------

APP_FIELDS = {
    "client_id",
    "client_secret",
    "name",
    "redirect_uris",
    "webhook_urls",
    "rate_limit_per_minute",
    "rate_limit_per_day",
    "approved",
}


@bp.get("/apps")
def list_apps() -> Response:
    """Every registered app (with secrets: this is a sandbox)."""
    sandbox = state()
    with sandbox.lock:
        return json_response([_app_view(sandbox, cid) for cid in sandbox.apps])


@bp.post("/apps")
def create_app() -> Response:
    """Register an app."""
    body = _only(json_body(), APP_FIELDS)
    sandbox = state()
    app = sandbox.create_app(
        client_id=_str(body, "client_id"),
        client_secret=_str(body, "client_secret"),
        name=_str(body, "name"),
        redirect_uris=_urls(body, "redirect_uris"),
        webhook_urls=_urls(body, "webhook_urls"),
        rate_limit_per_minute=_int(body, "rate_limit_per_minute"),
        rate_limit_per_day=_int(body, "rate_limit_per_day"),
        approved=bool(_bool(body, "approved")),
    )
    return json_response(_app_view(sandbox, app.client_id), 201)


@bp.get("/apps/<client_id>")
def get_app(client_id: str) -> Response:
    """One app."""
    sandbox = state()
    with sandbox.lock:
        return json_response(_app_view(sandbox, client_id))


@bp.patch("/apps/<client_id>")
def patch_app(client_id: str) -> Response:
    """Change an app's secret, URIs, webhook URLs, rate limits or approval."""
    body = _only(json_body(), APP_FIELDS - {"client_id"})
    sandbox = state()
    with sandbox.lock:
        app = sandbox.get_app(client_id)
        values: dict[str, Any] = {
            "client_secret": _str(body, "client_secret"),
            "name": _str(body, "name"),
            "redirect_uris": _urls(body, "redirect_uris"),
            "webhook_urls": _urls(body, "webhook_urls"),
            "rate_per_minute": _int(body, "rate_limit_per_minute"),
            "rate_per_day": _int(body, "rate_limit_per_day"),
            "approved": _bool(body, "approved"),
        }
        for name, value in values.items():
            if value is not None:
                setattr(app, name, value)
        return json_response(_app_view(sandbox, client_id))


@bp.delete("/apps/<client_id>")
def delete_app(client_id: str) -> Response:
    """Remove an app; its tokens stop working."""
    state().delete_app(client_id)
    return Response(status=204)


# -- members ------------------------------------------------------------------------

MEMBER_FIELDS = {
    "user_id",
    "email",
    "first_name",
    "last_name",
    "password",
    "device",
    "days",
    "timezone_offset",
}


def _tz_minutes(value: Any) -> int | None:
    if value is None:
        return None
    if value == "Z":
        return 0
    ok = (
        isinstance(value, str)
        and len(value) == 6
        and value[0] in "+-"
        and value[1:3].isdigit()
        and value[3] == ":"
        and value[4:].isdigit()
        and int(value[1:3]) <= 14
        and int(value[4:]) < 60
    )
    if not ok:
        raise _bad("timezone_offset must be Z, +hh:mm or -hh:mm")
    minutes = int(value[1:3]) * 60 + int(value[4:])
    return -minutes if value[0] == "-" else minutes


@bp.get("/members")
def list_members() -> Response:
    """Every fake member (with their password)."""
    sandbox = state()
    with sandbox.lock:
        return json_response([p.public() for p in sandbox.profiles.values()])


@bp.post("/members")
def create_member() -> Response:
    """Add a fake member; ``days`` of history (default 90) are generated on first use."""
    body = _only(json_body(), MEMBER_FIELDS)
    device = body.get("device")
    if device is not None and device not in ("3.0", "4.0", "5.0", "MG"):
        raise _bad("device must be one of 3.0, 4.0, 5.0, MG")
    email = _str(body, "email")
    if email is not None and "@" not in email:
        raise _bad("email must be an e-mail address")
    profile = state().create_member(
        user_id=_int(body, "user_id"),
        email=email,
        first_name=_str(body, "first_name"),
        last_name=_str(body, "last_name"),
        password=_str(body, "password"),
        device={"MG": "5.0"}.get(device, device),
        days=_int(body, "days", 1, 3650),
        tz_minutes=_tz_minutes(body.get("timezone_offset")),
    )
    return json_response(profile.public(), 201)


@bp.get("/members/<raw_id>")
def get_member(raw_id: str) -> Response:
    """One member with record counts."""
    sandbox = state()
    with sandbox.lock:
        profile = sandbox.get_member(_user_id(raw_id))
        return json_response(_member_view(sandbox, profile))


@bp.patch("/members/<raw_id>")
def patch_member(raw_id: str) -> Response:
    """Switch the member's webhooks on or off: ``{"webhooks": false}``."""
    body = _only(json_body(), {"webhooks"})
    enabled = _bool(body, "webhooks")
    if enabled is None:
        raise _bad("webhooks (true or false) is required")
    sandbox = state()
    with sandbox.lock:
        profile = sandbox.get_member(_user_id(raw_id))
        sandbox.set_member_webhooks(profile.user_id, enabled)
        return json_response(_member_view(sandbox, profile))


def _member_view(sandbox: SandboxState, profile) -> dict:
    """A member's profile, record counts and whether their webhooks are on."""
    md = sandbox.data(profile.user_id)
    out = profile.public()
    out["counts"] = {
        "cycles": len(md.cycles),
        "sleeps": len(md.sleeps),
        "recoveries": len(md.recoveries),
        "workouts": len(md.workouts),
    }
    out["webhooks"] = profile.user_id not in sandbox.webhooks_off
    return out


@bp.post("/members/<raw_id>/sleeps")
def create_sleep(raw_id: str) -> Response:
    """Add a sleep (webhooks: sleep.updated, and recovery.updated unless a nap)."""
    sandbox = state()
    user_id = sandbox.get_member(_user_id(raw_id)).user_id
    return json_response(changes.create_sleep(sandbox, user_id, json_body()), 201)


@bp.patch("/members/<raw_id>/sleeps/<sleep_id>")
def update_sleep(raw_id: str, sleep_id: str) -> Response:
    """Rescore a sleep (webhooks: sleep.updated, recovery.updated)."""
    sandbox = state()
    user_id = sandbox.get_member(_user_id(raw_id)).user_id
    return json_response(changes.update_sleep(sandbox, user_id, sleep_id, json_body()))


@bp.delete("/members/<raw_id>/sleeps/<sleep_id>")
def delete_sleep(raw_id: str, sleep_id: str) -> Response:
    """Delete a sleep (webhooks: sleep.deleted, recovery.deleted)."""
    sandbox = state()
    user_id = sandbox.get_member(_user_id(raw_id)).user_id
    changes.delete_sleep(sandbox, user_id, sleep_id)
    return Response(status=204)


@bp.post("/members/<raw_id>/workouts")
def create_workout(raw_id: str) -> Response:
    """Add a workout (webhook: workout.updated)."""
    sandbox = state()
    user_id = sandbox.get_member(_user_id(raw_id)).user_id
    return json_response(changes.create_workout(sandbox, user_id, json_body()), 201)


@bp.patch("/members/<raw_id>/workouts/<workout_id>")
def update_workout(raw_id: str, workout_id: str) -> Response:
    """Rescore a workout (webhook: workout.updated)."""
    sandbox = state()
    user_id = sandbox.get_member(_user_id(raw_id)).user_id
    return json_response(changes.update_workout(sandbox, user_id, workout_id, json_body()))


@bp.delete("/members/<raw_id>/workouts/<workout_id>")
def delete_workout(raw_id: str, workout_id: str) -> Response:
    """Delete a workout (webhook: workout.deleted)."""
    sandbox = state()
    user_id = sandbox.get_member(_user_id(raw_id)).user_id
    changes.delete_workout(sandbox, user_id, workout_id)
    return Response(status=204)


# -- OAuth shortcuts -----------------------------------------------------------------


def _grant_args(body: dict) -> tuple:
    sandbox = state()
    app = sandbox.get_app(_str(body, "client_id", required=True))
    user_id = _int(body, "user_id")
    if user_id is None:
        raise _bad("user_id is required")
    member = sandbox.get_member(user_id)
    scope = body.get("scope", " ".join(sorted(SCOPES)))
    if not isinstance(scope, str):
        raise _bad("scope must be a space separated string")
    scopes = frozenset(scope.split())
    if scopes - SCOPES:
        raise SandboxError(400, "invalid_scope", f"unknown scopes: {sorted(scopes - SCOPES)}")
    return sandbox, app, member, scopes


@bp.post("/authorize")
def authorize() -> Response:
    """Consent on a member's behalf without the HTML page; returns the code and redirect URL."""
    body = _only(
        json_body(), {"client_id", "user_id", "scope", "redirect_uri", "state", "code_challenge"}
    )
    sandbox, app, member, scopes = _grant_args(body)
    redirect_uri = _str(body, "redirect_uri") or (
        app.redirect_uris[0] if app.redirect_uris else None
    )
    if redirect_uri is None or redirect_uri not in app.redirect_uris:
        raise _bad("redirect_uri must be one of the app's registered redirect URIs")
    challenge = _str(body, "code_challenge")
    if challenge is not None and not PKCE_RE.fullmatch(challenge):
        raise _bad("code_challenge must be an S256 challenge (43-128 URL-safe characters)")
    code = sandbox.issue_code(app, member.user_id, redirect_uri, scopes, challenge)
    params = {"code": code, "scope": " ".join(sorted(scopes))}
    if _str(body, "state"):
        params["state"] = body["state"]
    return json_response(
        {
            "code": code,
            "redirect_uri": redirect_uri,
            "redirect_url": with_query(redirect_uri, params),
        }
    )


@bp.post("/tokens")
def tokens() -> Response:
    """Mint tokens for a member directly (consent + exchange in one step)."""
    body = _only(json_body(), {"client_id", "user_id", "scope"})
    _sandbox, app, member, scopes = _grant_args(body)
    token = state().grant_tokens(app.client_id, member.user_id, " ".join(sorted(scopes)))
    return json_response(token, 201)


# -- faults, clock, webhooks ------------------------------------------------------------


@bp.get("/faults")
def get_faults() -> Response:
    """Current fault settings."""
    return json_response(state().faults.public())


@bp.route("/faults", methods=["PUT", "POST"])
def set_faults() -> Response:
    """Replace the fault settings (rates 0..1; ``remaining`` limits them to the next N)."""
    return json_response(state().set_faults(json_body()))


@bp.delete("/faults")
def clear_faults() -> Response:
    """No more faults."""
    state().set_faults({})
    return Response(status=204)


@bp.get("/clock")
def get_clock() -> Response:
    """The sandbox time and its offset from real time."""
    sandbox = state()
    return json_response(
        {
            "now": gen.iso_ms(sandbox.clock.now_ms()),
            "offset_seconds": sandbox.clock.offset_ms / 1000,
        }
    )


@bp.post("/clock")
def set_clock() -> Response:
    """``{"advance_seconds": n}`` moves time forward; ``{"reset": true}`` back to real time."""
    body = _only(json_body(), {"advance_seconds", "reset"})
    sandbox = state()
    with sandbox.lock:
        if body.get("reset") is True:
            sandbox.clock.offset_ms = 0
        elif "advance_seconds" in body:
            value = body["advance_seconds"]
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 <= value <= 100 * 365 * 86_400  # also refuses NaN and Infinity
            ):
                raise _bad("advance_seconds must be a number of seconds, up to 100 years")
            sandbox.clock.offset_ms += int(value * 1000)
        else:
            raise _bad("send advance_seconds or reset")
    return get_clock()


@bp.get("/webhooks")
def list_webhooks() -> Response:
    """Every webhook delivery with its attempts (``?wait=1`` waits until none is pending)."""
    sandbox = state()
    if request.args.get("wait"):
        sandbox.dispatcher.wait_idle(10)
    return json_response(sandbox.dispatcher.public())


@bp.delete("/webhooks")
def clear_webhooks() -> Response:
    """Forget finished deliveries."""
    state().dispatcher.clear()
    return Response(status=204)


# -- partners -----------------------------------------------------------------------------


@bp.get("/partners")
def list_partners() -> Response:
    """Every partner with its secrets."""
    sandbox = state()
    with sandbox.lock:
        return json_response([p.public() for p in sandbox.partners.values()])


@bp.post("/partners")
def create_partner() -> Response:
    """Register a trusted partner."""
    body = _only(json_body(), {"client_id", "client_secret", "signing_secret", "webhook_urls"})
    partner = state().create_partner(
        client_id=_str(body, "client_id"),
        client_secret=_str(body, "client_secret"),
        signing_secret=_str(body, "signing_secret"),
        webhook_urls=_urls(body, "webhook_urls"),
    )
    return json_response(partner.public(), 201)


@bp.post("/partners/<client_id>/events")
def partner_event(client_id: str) -> Response:
    """Send a signed partner webhook ``{event_type, resource_id}``."""
    body = _only(json_body(), {"event_type", "resource_id"})
    sandbox = state()
    partner = sandbox.partners.get(client_id)
    if partner is None:
        raise SandboxError(404, "not_found", "no such partner")
    queued = sandbox.emit_partner(
        partner, _str(body, "event_type", required=True), _str(body, "resource_id", required=True)
    )
    return json_response({"queued": queued}, 202)
