"""Who a verified OpenID Connect identity is here: match, create or refuse a staff account.

How single sign-on meets the second factor (README, "Single sign-on"): when the ID
token's ``amr`` claim says the provider used more than one factor (``mfa``, RFC 8176), the
session counts as signed in with a second factor ("idp") and whoopadmin asks for no code.
Otherwise SSO is a first factor like a password: an account with an authenticator app is
asked for its code, and an operator without one (when ``REQUIRE_MFA`` is on) must enrol.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app

from whoopadmin import audit
from whoopadmin.auth import service as accounts
from whoopadmin.auth.models import StaffUser
from whoopadmin.extensions import db


class SsoError(ValueError):
    """The identity provider's answer does not sign anyone in; the message says why."""


def configured() -> bool:
    """Return whether single sign-on is set up."""
    config = current_app.config
    return bool(config.get("OIDC_ISSUER") and config.get("OIDC_CLIENT_ID"))


def provider_name() -> str | None:
    """The name on the "Sign in with …" button (None: no single sign-on)."""
    if not configured():
        return None
    config = current_app.config
    return config.get("OIDC_PROVIDER_NAME") or urlsplit(config["OIDC_ISSUER"]).hostname


def allowed_domains() -> set[str]:
    """E-mail domains whose new, verified addresses get an account."""
    raw = str(current_app.config.get("OIDC_ALLOWED_DOMAINS") or "")
    return {d.strip().lower().lstrip("@").rstrip(".") for d in raw.split(",")} - {""}


def _refuse(message: str, reason: str, email: str | None, user=None) -> SsoError:
    audit.record("sso", "staff.sso_refused", user, email=email, reason=reason)
    db.session.commit()
    return SsoError(message)


def account_for(claims: dict) -> StaffUser:
    """Return the active staff account for verified ID-token ``claims``, creating it if its
    domain is allowed; raise SsoError (audited) otherwise."""
    raw = claims.get("email")
    if not isinstance(raw, str) or not raw:
        raise _refuse("Your identity provider sent no e-mail address.", "no_email", None)
    try:
        email = accounts.normalise_email(raw)
    except accounts.StaffError:
        raise _refuse(
            "Your identity provider sent an unusable e-mail address.", "bad_email", None
        ) from None
    if claims.get("email_verified") is not True:
        raise _refuse(
            f"Your identity provider has not verified {email}: verify it there first.",
            "unverified",
            email,
        )
    user = accounts.find_by_email(email)
    if user is not None:
        if not user.active:
            raise _refuse(
                "This account is deactivated. Ask an operator to reactivate it.",
                "deactivated",
                email,
                user,
            )
        return user
    domain = email.rsplit("@", 1)[1]
    if domain not in allowed_domains():
        raise _refuse(
            f"There is no staff account for {email}. Ask an operator to create one.",
            "unknown_account",
            email,
        )
    role = current_app.config["OIDC_DEFAULT_ROLE"]
    return accounts.create_user("sso", email, role, None)


def idp_second_factor(claims: dict) -> bool:
    """Return whether the provider says it used more than one factor (``amr`` has "mfa")."""
    amr = claims.get("amr")
    return isinstance(amr, list) and "mfa" in amr
