"""Binding an OAuth state to the browser that started the flow, with a short-lived cookie.

``POST /connect/<token>/start`` makes a random value, keeps only its SHA-256 on the
``OAuthState`` row and hands the value to the browser in a cookie. WHOOP's redirect back
is a top-level GET navigation, so the browser sends the cookie with it (``SameSite=Lax``
allows exactly that) and the callback accepts the state only with that cookie. A state
lifted from one browser (or a code injected with someone else's state) arrives without
the cookie and is refused before anything is claimed, so the real browser can still
finish.

Each state has its own cookie name (from the state's hash), so two flows started in two
tabs of one browser do not overwrite each other's binding. The cookie is host-only (set
on the connection's host, no ``Domain``), limited to the callback's path, ``HttpOnly``,
``Secure`` over https, and lives as long as the state (10 minutes).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import timedelta

from flask import Response, current_app, request

COOKIE_PREFIX = "whoopadmin_oauth_"
# Only the OAuth callback needs the cookie: no other request of the host carries it.
COOKIE_PATH = "/auth/whoop/oauth2"
# A value we make is 43 characters; anything much longer is junk and is not even hashed.
MAX_VALUE_LENGTH = 128


def new_value() -> str:
    """A fresh random binding value (256 bits) for one state."""
    return secrets.token_urlsafe(32)


def value_hash(value: str) -> str:
    """The stored form of a binding value."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def cookie_name(state: str) -> str:
    """The cookie that carries the binding of ``state``."""
    return COOKIE_PREFIX + hashlib.sha256(state.encode("utf-8")).hexdigest()[:16]


def presented(cookies: Mapping[str, str], state: str) -> str | None:
    """The binding value the browser sent for ``state``, if any."""
    return cookies.get(cookie_name(state)) if state else None


def matches(binding_hash: str | None, value: str | None) -> bool:
    """Whether ``value`` is the binding stored as ``binding_hash`` (constant time)."""
    if not binding_hash or not value or len(value) > MAX_VALUE_LENGTH:
        return False
    return hmac.compare_digest(binding_hash, value_hash(value))


def _secure() -> bool:
    return request.is_secure or current_app.config["PUBLIC_SCHEME"] == "https"


def set_cookie(response: Response, state: str, value: str, lifetime: timedelta) -> Response:
    """Hand the binding of ``state`` to the browser."""
    response.set_cookie(
        cookie_name(state),
        value,
        max_age=int(lifetime.total_seconds()),
        path=COOKIE_PATH,
        secure=_secure(),
        httponly=True,
        samesite="Lax",
    )
    return response


def clear_cookie(response: Response, state: str) -> Response:
    """Tell the browser to forget the binding of ``state`` (it has been used)."""
    response.delete_cookie(
        cookie_name(state), path=COOKIE_PATH, secure=_secure(), httponly=True, samesite="Lax"
    )
    return response
