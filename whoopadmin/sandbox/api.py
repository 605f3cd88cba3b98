"""WHOOP API v2 at its real paths (base ``/developer``): bearer tokens, scopes, paging."""

from __future__ import annotations

import base64
import binascii
import uuid

from flask import Blueprint, Response, g, request

from . import data as gen
from .state import SandboxError, Token
from .web import error_response, json_response, state

bp = Blueprint("sandbox_api", __name__, url_prefix="/developer")

MAX_LIMIT = 25
DEFAULT_LIMIT = 10


@bp.before_request
def authenticate() -> Response | None:
    """Bearer token, then the app's rate limit."""
    sandbox = state()
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    try:
        if scheme.lower() != "bearer" or not value.strip():
            raise SandboxError(401, "invalid_token", "Missing bearer token.")
        token = sandbox.bearer(value.strip())
    except SandboxError as exc:
        return error_response(exc, {"WWW-Authenticate": f'Bearer error="{exc.error}"'})
    app = sandbox.apps.get(token.client_id)
    if app is None:  # deleted between the two look-ups
        return error_response(SandboxError(401, "invalid_token", "The app no longer exists."))
    allowed, headers = sandbox.rate_limit(app)
    g.rate_headers = headers
    if not allowed:
        extra = dict(headers)
        if sandbox.config.retry_after_header:
            extra["Retry-After"] = headers["X-RateLimit-Reset"]
        return json_response(
            {"error": "rate_limited", "error_description": "Too many requests for this app."},
            429,
            extra,
        )
    g.token = token
    return None


@bp.after_request
def rate_headers(response: Response) -> Response:
    """Every API answer carries the app's X-RateLimit-* headers."""
    for name, value in getattr(g, "rate_headers", {}).items():
        response.headers.setdefault(name, value)
    return response


@bp.errorhandler(SandboxError)
def sandbox_error(exc: SandboxError) -> Response:
    """Typed errors become JSON with their status."""
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = f'Bearer error="{exc.error}"'
    return error_response(exc, headers)


def need(scope: str) -> Token:
    """The request's token, if it carries ``scope`` (else 401 insufficient_scope)."""
    token: Token = g.token
    if scope not in token.scopes:
        raise SandboxError(401, "insufficient_scope", f"This token lacks the {scope} scope.")
    return token


def _limit() -> int:
    raw = request.args.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise SandboxError(400, "invalid_request", "limit must be an integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise SandboxError(400, "invalid_request", f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def _time_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        return gen.parse_datetime_ms(raw)
    except ValueError:
        raise SandboxError(
            400, "invalid_request", f"{name} must be an RFC 3339 date-time"
        ) from None


def encode_token(key: tuple[int, str]) -> str:
    """Opaque next_token: base64url of ``-start:id``."""
    raw = f"{key[0]}:{key[1]}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(text: str) -> tuple[int, str]:
    """Inverse of encode_token; a 400 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        neg, _, record_id = raw.partition(":")
        if not record_id:
            raise ValueError
        return int(neg), record_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise SandboxError(400, "invalid_request", "nextToken is not valid") from None


def page(collection_name: str, scope: str) -> Response:
    """A page of a member's collection, newest first."""
    token = need(scope)
    sandbox = state()
    limit = _limit()
    start = _time_arg("start")
    end = _time_arg("end")
    raw_next = request.args.get("nextToken")
    after = decode_token(raw_next) if raw_next else None
    if end is None:
        end = sandbox.clock.now_ms()
    overlap = sandbox.config.range_mode == "overlap"
    with sandbox.lock:
        collection = getattr(sandbox.data(token.user_id), collection_name)
        records, last = collection.page(start, end, after, limit, overlap)
        body: dict = {"records": records}
        if last is not None:
            body["next_token"] = encode_token(last)
        elif sandbox.config.last_page_token == "null":
            body["next_token"] = None
        elif sandbox.config.last_page_token == "empty":
            body["next_token"] = ""
        return json_response(body)


def _cycle_id(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SandboxError(400, "invalid_request", "cycleId must be an integer") from None
    if not -(2**63) <= value < 2**63:
        raise SandboxError(400, "invalid_request", "cycleId must be an int64")
    return value


def _uuid(raw: str, name: str) -> str:
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise SandboxError(400, "invalid_request", f"{name} must be a UUID") from None


def _not_found() -> SandboxError:
    return SandboxError(404, "not_found", "No resource found")


@bp.get("/v2/user/profile/basic")
def profile() -> Response:
    """UserBasicProfile."""
    token = need("read:profile")
    member = state().get_member(token.user_id)
    return json_response(
        {
            "user_id": member.user_id,
            "email": member.email,
            "first_name": member.first_name,
            "last_name": member.last_name,
        }
    )


@bp.get("/v2/user/measurement/body")
def body_measurement() -> Response:
    """UserBodyMeasurement."""
    token = need("read:body_measurement")
    member = state().get_member(token.user_id)
    return json_response(
        {
            "height_meter": member.height_meter,
            "weight_kilogram": member.weight_kilogram,
            "max_heart_rate": member.max_heart_rate,
        }
    )


@bp.delete("/v2/user/access")
def revoke_access() -> Response:
    """Revoke the member's grant to this app: every token dies and webhooks stop."""
    token: Token = g.token
    state().revoke_access(token.client_id, token.user_id)
    return Response(status=204)


@bp.get("/v2/cycle")
def cycles() -> Response:
    """PaginatedCycleResponse."""
    return page("cycles", "read:cycles")


def _by_id(token: Token, index: str, key) -> Response:
    """One record from the member's ``index`` (e.g. ``sleep_by_id``), or WHOOP's 404."""
    sandbox = state()
    with sandbox.lock:
        found = getattr(sandbox.data(token.user_id), index).get(key)
        if found is None:
            raise _not_found()
        return json_response(found)


@bp.get("/v2/cycle/<raw_id>")
def cycle(raw_id: str) -> Response:
    """One Cycle by its int64 id."""
    token = need("read:cycles")
    cycle_id = _cycle_id(raw_id)
    return _by_id(token, "cycle_by_id", cycle_id)


@bp.get("/v2/cycle/<raw_id>/sleep")
def cycle_sleep(raw_id: str) -> Response:
    """The main sleep of a cycle."""
    token = need("read:sleep")
    cycle_id = _cycle_id(raw_id)
    sandbox = state()
    with sandbox.lock:
        md = sandbox.data(token.user_id)
        sleep_id = md.main_sleep_by_cycle.get(cycle_id)
        if sleep_id is None:
            raise _not_found()
        return json_response(md.sleep_by_id[sleep_id])


@bp.get("/v2/cycle/<raw_id>/recovery")
def cycle_recovery(raw_id: str) -> Response:
    """The recovery of a cycle (there is no recovery-by-id route)."""
    token = need("read:recovery")
    cycle_id = _cycle_id(raw_id)
    return _by_id(token, "recovery_by_cycle", cycle_id)


@bp.get("/v2/recovery")
def recoveries() -> Response:
    """RecoveryCollection, ordered by the start of each recovery's sleep."""
    return page("recoveries", "read:recovery")


@bp.get("/v2/activity/sleep")
def sleeps() -> Response:
    """PaginatedSleepResponse (naps included)."""
    return page("sleeps", "read:sleep")


@bp.get("/v2/activity/sleep/<raw_id>")
def sleep(raw_id: str) -> Response:
    """One Sleep by UUID."""
    token = need("read:sleep")
    sleep_id = _uuid(raw_id, "sleepId")
    return _by_id(token, "sleep_by_id", sleep_id)


@bp.get("/v2/activity/workout")
def workouts() -> Response:
    """WorkoutCollection."""
    return page("workouts", "read:workout")


@bp.get("/v2/activity/workout/<raw_id>")
def workout(raw_id: str) -> Response:
    """One Workout by UUID."""
    token = need("read:workout")
    workout_id = _uuid(raw_id, "workoutId")
    return _by_id(token, "workout_by_id", workout_id)


@bp.get("/v1/activity-mapping/<raw_id>")
def activity_mapping(raw_id: str) -> Response:
    """The v2 UUID of a legacy (v1) sleep or workout id."""
    token: Token = g.token
    try:
        v1_id = int(raw_id)
    except ValueError:
        raise SandboxError(400, "invalid_request", "activityV1Id must be an integer") from None
    sandbox = state()
    with sandbox.lock:
        found = sandbox.data(token.user_id).v1_ids.get(v1_id)
        if found is None:
            raise _not_found()
        return json_response({"v2_activity_id": found})
