"""WHOOP API v2 calls that need no app: profile and revocation (sync lives in its own module)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests


class WhoopError(Exception):
    """A WHOOP call failed; ``code`` is stable, the message never carries a secret.

    Codes: ``unauthorized`` (401), ``insufficient_scope`` (401 for a missing scope),
    ``not_found`` (404: the object is gone), ``rate_limited`` (429 or no budget left;
    ``retry_after`` says how many seconds to wait), ``server_error`` (5xx),
    ``bad_request`` (400), ``http_error`` (another status), ``network`` (no answer or a
    timeout) and ``bad_response`` (an answer that is not what the API documents).
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """Return whether trying again later can help (network, 5xx, rate limits)."""
        return self.code in ("network", "server_error", "rate_limited")


@dataclass(frozen=True)
class Profile:
    """The basic profile: the WHOOP user id and, when shared, e-mail and names."""

    user_id: int
    email: str | None
    first_name: str | None
    last_name: str | None


def _get(url: str, access_token: str, timeout: float, session: requests.Session | None) -> Any:
    http = session or requests
    try:
        response = http.get(
            url, headers={"Authorization": f"Bearer {access_token}"}, timeout=timeout
        )
    except requests.RequestException as exc:
        raise WhoopError("network", f"WHOOP did not answer ({type(exc).__name__}).") from None
    if response.status_code == 401:
        raise WhoopError("unauthorized", "WHOOP refused the access token (401).", 401)
    if response.status_code == 429:
        raise WhoopError("rate_limited", "WHOOP's rate limit was reached (429).", 429)
    if response.status_code != 200:
        raise WhoopError(
            "http_error", f"WHOOP answered HTTP {response.status_code}.", response.status_code
        )
    try:
        return response.json()
    except ValueError:
        raise WhoopError("bad_response", "WHOOP's answer was not JSON.") from None


def get_profile(
    api_base: str,
    access_token: str,
    timeout: float = 10.0,
    session: requests.Session | None = None,
) -> Profile:
    """Read ``/v2/user/profile/basic``; raise WhoopError if it is missing or malformed."""
    data = _get(f"{api_base.rstrip('/')}/v2/user/profile/basic", access_token, timeout, session)
    user_id = data.get("user_id") if isinstance(data, dict) else None
    if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id <= 0:
        raise WhoopError("bad_response", "WHOOP's profile has no valid user_id.")

    def text(name: str) -> str | None:
        value = data.get(name)
        return value[:255] if isinstance(value, str) and value else None

    return Profile(user_id, text("email"), text("first_name"), text("last_name"))


def revoke_access(
    api_base: str,
    access_token: str,
    timeout: float = 10.0,
    session: requests.Session | None = None,
) -> None:
    """``DELETE /v2/user/access``: WHOOP forgets the grant and stops its webhooks.

    A 401 means the token is already dead, which is as good as revoked.
    """
    http = session or requests
    try:
        response = http.delete(
            f"{api_base.rstrip('/')}/v2/user/access",
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=timeout,
        )
    except requests.RequestException as exc:
        raise WhoopError("network", f"WHOOP did not answer ({type(exc).__name__}).") from None
    if response.status_code not in (200, 204, 401):
        raise WhoopError(
            "http_error", f"WHOOP answered HTTP {response.status_code}.", response.status_code
        )
