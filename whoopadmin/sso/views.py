"""Sign in with the staff identity provider: discovery, PKCE, state and nonce (authlib)."""

from __future__ import annotations

import requests
from authlib.common.errors import AuthlibBaseError
from flask import Blueprint, abort, current_app, flash, redirect, request, session, url_for
from joserfc.errors import JoseError

from whoopadmin.auth import throttle
from whoopadmin.auth.views import login_limit, safe_next
from whoopadmin.errors import render_error
from whoopadmin.extensions import limiter
from whoopadmin.mfa import signin
from whoopadmin.sso import service

bp = Blueprint("sso", __name__)
NEXT = "sso_next"
# Errors an identity provider's answer (or a forged callback) can raise in authlib.
PROVIDER_ERRORS = (
    AuthlibBaseError,
    JoseError,
    requests.RequestException,
    ValueError,
    KeyError,
    TypeError,
)


def client():
    """This app's OpenID Connect client (discovery is read on first use, then kept)."""
    from authlib.integrations.flask_client import OAuth

    app = current_app._get_current_object()
    found = app.extensions.get("whoopadmin.oidc")
    if found is None:
        config = app.config
        found = OAuth(app).register(
            "staff_idp",
            client_id=config["OIDC_CLIENT_ID"],
            client_secret=config["OIDC_CLIENT_SECRET"],
            server_metadata_url=config["OIDC_ISSUER"].rstrip("/")
            + "/.well-known/openid-configuration",
            client_kwargs={
                "scope": "openid email profile",
                "code_challenge_method": "S256",
                "default_timeout": 10,
            },
        )
        app.extensions["whoopadmin.oidc"] = found
    return found


def _check_issuer(oidc) -> None:
    # Discovery must describe the issuer we were configured with (OpenID Discovery 4.3).
    metadata = oidc.load_server_metadata()
    if metadata.get("issuer") != current_app.config["OIDC_ISSUER"]:
        raise ValueError("the discovery document names another issuer")


def _claims(oidc) -> dict:
    """The checked ID token's claims, with the e-mail claims from the UserInfo endpoint when
    the ID token leaves them out (as oidc-provider does by default)."""
    token = oidc.authorize_access_token()  # state, PKCE, ID token signature, iss, aud, nonce
    claims = dict(token.get("userinfo") or {})
    if not claims.get("sub"):
        raise ValueError("no ID token")
    if "email" not in claims:
        info = dict(oidc.userinfo(token=token))
        if info.get("sub") != claims["sub"]:  # OpenID Connect Core 5.3.2
            raise ValueError("UserInfo is about someone else")
        claims.update({k: info[k] for k in ("email", "email_verified") if k in info})
    return claims


@bp.route("/login/sso")
@limiter.limit(login_limit, on_breach=throttle.address_breached)
def start():
    """Send the browser to the identity provider."""
    if not service.configured():
        abort(404)
    oidc = client()
    try:
        _check_issuer(oidc)
        response = oidc.authorize_redirect(url_for("sso.callback", _external=True))
    except PROVIDER_ERRORS as exc:
        current_app.logger.warning("single sign-on unavailable: %s", type(exc).__name__)
        return render_error(503, "The identity provider cannot be reached. Try again later.")
    session[NEXT] = safe_next(request.args.get("next"))
    return response


@bp.route("/login/sso/callback")
@limiter.limit(login_limit, on_breach=throttle.address_breached)
def callback():
    """Where the identity provider sends the browser back: check everything, then sign in."""
    if not service.configured():
        abort(404)
    if request.args.get("error"):
        flash("Single sign-on was cancelled or refused by the identity provider.", "danger")
        return redirect(url_for("auth.login")), 303
    try:
        claims = _claims(client())
    except PROVIDER_ERRORS as exc:
        current_app.logger.info("single sign-on refused: %s", type(exc).__name__)
        return render_error(
            400,
            "Single sign-on did not complete: the answer from the identity provider was not "
            "for this sign-in, or could not be checked. Start again from the sign-in page.",
        )
    try:
        user = service.account_for(claims)
    except service.SsoError as exc:
        flash(str(exc), "danger")
        return redirect(url_for("auth.login")), 303
    next_path = safe_next(session.pop(NEXT, None))
    return signin.after_first_factor(
        user, "sso", next_path, idp_second_factor=service.idp_second_factor(claims)
    )
