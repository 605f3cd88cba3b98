"""OAuth 2.0 at WHOOP's paths: the sign-in + consent page and the token endpoint."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, redirect, render_template, request

from .state import PKCE_RE, SCOPES, App, SandboxError
from .web import error_response, json_response, state

bp = Blueprint("sandbox_oauth", __name__, url_prefix="/oauth/oauth2")

SCOPE_TEXT = {
    "offline": "Stay connected when you are not using the app (refresh tokens)",
    "read:profile": "Your name and e-mail address",
    "read:body_measurement": "Your height, weight and max heart rate",
    "read:cycles": "Your day strain and heart rate per cycle",
    "read:recovery": "Your recovery score, HRV and resting heart rate",
    "read:sleep": "Your sleep performance and sleep stages",
    "read:workout": "Your workouts, their strain and heart rate zones",
}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def with_query(uri: str, params: dict[str, str]) -> str:
    """Add query parameters to a registered redirect URI, keeping its own."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


class _Redirectable(Exception):
    """An authorize error that goes back to the (verified) redirect URI."""

    def __init__(self, uri: str, error: str, description: str, state_value: str | None) -> None:
        super().__init__(description)
        params = {"error": error, "error_description": description}
        if state_value:
            params["state"] = state_value
        self.location = with_query(uri, params)


def _error_page(error: str, description: str, status: int = 400) -> Response:
    html = render_template("sandbox/error.html", error=error, description=description)
    return Response(html, status=status, mimetype="text/html")


def _validate(params) -> tuple[App, str, frozenset[str], str, str | None]:
    """Check an authorize request; returns (app, redirect_uri, scopes, state, PKCE challenge)."""
    sandbox = state()
    app = sandbox.apps.get(params.get("client_id", ""))
    if app is None:
        raise SandboxError(400, "invalid_client", "The requested OAuth 2.0 client does not exist.")
    redirect_uri = params.get("redirect_uri")
    # Exact match only: no trimming, no prefix matching, no default.
    if redirect_uri is None or redirect_uri not in app.redirect_uris:
        raise SandboxError(
            400,
            "invalid_request",
            "The 'redirect_uri' parameter does not match any of the OAuth 2.0 client's "
            "pre-registered redirect URLs.",
        )
    state_value = params.get("state")
    if params.get("response_type") != "code":
        raise _Redirectable(
            redirect_uri,
            "unsupported_response_type",
            "The authorization server does not support this response_type; use 'code'.",
            state_value,
        )
    if not state_value or len(state_value) < 8:
        raise _Redirectable(
            redirect_uri,
            "invalid_state",
            "The state is missing or does not have enough characters and is therefore "
            "considered too weak. Request parameter 'state' must be at least 8 characters long.",
            state_value,
        )
    scopes = frozenset(params.get("scope", "").split())
    unknown = scopes - SCOPES
    if unknown:
        raise _Redirectable(
            redirect_uri,
            "invalid_scope",
            f"The requested scope is invalid, unknown, or malformed: {' '.join(sorted(unknown))}",
            state_value,
        )
    return app, redirect_uri, scopes, state_value, _challenge(params, redirect_uri, state_value)


def _challenge(params, redirect_uri: str, state_value: str) -> str | None:
    """The PKCE challenge of an authorize request: S256 only (plain is refused), well formed."""
    challenge = params.get("code_challenge") or None
    method = params.get("code_challenge_method") or None
    if challenge is None:
        if method is not None:
            raise _Redirectable(
                redirect_uri,
                "invalid_request",
                "The code_challenge_method was given without a code_challenge.",
                state_value,
            )
        return None
    if method != "S256":
        raise _Redirectable(
            redirect_uri,
            "invalid_request",
            "Clients must use code_challenge_method=S256; plain is not allowed.",
            state_value,
        )
    if not PKCE_RE.fullmatch(challenge):
        raise _Redirectable(
            redirect_uri,
            "invalid_request",
            "The code_challenge must be 43 to 128 characters of A-Z, a-z, 0-9, '-', '.', "
            "'_' and '~'.",
            state_value,
        )
    return challenge


def _consent(app: App, scopes, params, message: str | None = None, status: int = 200) -> Response:
    html = render_template(
        "sandbox/consent.html",
        app=app,
        scopes=[(s, SCOPE_TEXT[s]) for s in sorted(scopes)],
        params={
            **{
                k: params.get(k, "")
                for k in ("client_id", "redirect_uri", "response_type", "scope", "state")
            },
            **{k: params[k] for k in ("code_challenge", "code_challenge_method") if k in params},
        },
        email=params.get("email", ""),
        message=message,
    )
    return Response(html, status=status, mimetype="text/html")


@bp.route("/auth", methods=["GET", "POST"])
def authorize() -> Response:
    """GET: the sign-in + consent page. POST: the member's answer (Approve / Deny)."""
    params = request.form if request.method == "POST" else request.args
    try:
        app, redirect_uri, scopes, state_value, challenge = _validate(params)
        if request.method == "GET":
            return _consent(app, scopes, params)
        if request.form.get("action") != "approve":
            raise _Redirectable(
                redirect_uri,
                "access_denied",
                "The resource owner denied the request.",
                state_value,
            )
        sandbox = state()
        member = sandbox.member_by_email(request.form.get("email", ""))
        if member is None or request.form.get("password", "") != member.password:
            return _consent(app, scopes, params, "Wrong e-mail or password.", 401)
        try:
            code = sandbox.issue_code(app, member.user_id, redirect_uri, scopes, challenge)
        except SandboxError as exc:
            raise _Redirectable(redirect_uri, exc.error, exc.description, state_value) from None
        location = with_query(
            redirect_uri, {"code": code, "scope": " ".join(sorted(scopes)), "state": state_value}
        )
        return redirect(location, 302)
    except _Redirectable as exc:
        return redirect(exc.location, 302)
    except SandboxError as exc:
        return _error_page(exc.error, exc.description, exc.status)


@bp.post("/token")
def token() -> Response:
    """The token endpoint: client_secret_post only, form-encoded."""
    sandbox = state()
    try:
        if request.mimetype != "application/x-www-form-urlencoded":
            raise SandboxError(
                400,
                "invalid_request",
                "The request must be application/x-www-form-urlencoded.",
            )
        if request.authorization is not None:
            raise SandboxError(
                401,
                "invalid_client",
                "Client authentication failed: this client uses client_secret_post; "
                "send client_id and client_secret in the form body.",
            )
        form = request.form
        app = sandbox.authenticate_client(form.get("client_id"), form.get("client_secret"))
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            code = form.get("code")
            if not code:
                raise SandboxError(400, "invalid_request", "The 'code' parameter is missing.")
            body = sandbox.exchange_code(
                app, code, form.get("redirect_uri"), form.get("code_verifier")
            )
        elif grant_type == "refresh_token":
            refresh_token = form.get("refresh_token")
            if not refresh_token:
                raise SandboxError(
                    400, "invalid_request", "The 'refresh_token' parameter is missing."
                )
            body = sandbox.refresh(app, refresh_token, form.get("scope"))
        elif not grant_type:
            raise SandboxError(400, "invalid_request", "The 'grant_type' parameter is missing.")
        else:
            raise SandboxError(
                400, "unsupported_grant_type", f"The grant type {grant_type!r} is not supported."
            )
        return json_response(body, 200, NO_STORE)
    except SandboxError as exc:
        return error_response(exc, NO_STORE)
