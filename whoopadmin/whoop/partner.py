"""WHOOP Partner API tokens (client credentials, JSON body), cached and renewed on a 401.

No Flask here. One ``PartnerTokens`` per partner client; it is thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import requests

from whoopadmin.whoop.api import WhoopError

SCOPE = "whoop-partner/token"


class PartnerTokens:
    """Gets a partner token, caches it until shortly before expiry, retries once on 401."""

    def __init__(
        self,
        api_base: str,
        client_id: str,
        client_secret: str,
        *,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = f"{api_base.rstrip('/')}/v2/partner/token"
        self.api_base = api_base.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._session = session or requests.Session()
        self._own_session = session is None
        self._timeout = timeout
        self._margin = margin
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires = 0.0
        self.tokens_fetched = 0  # for logs and tests

    def __repr__(self) -> str:
        return f"PartnerTokens(client_id={self._client_id!r})"

    def close(self) -> None:
        """Close the HTTP session if this object opened it."""
        if self._own_session:
            self._session.close()

    def token(self) -> str:
        """A valid partner access token (cached)."""
        with self._lock:
            if self._token is None or self._clock() >= self._expires - self._margin:
                self._fetch()
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (WHOOP refused it) so the next call fetches a new one."""
        with self._lock:
            if self._token == token:
                self._token = None

    def _fetch(self) -> None:
        body = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "scope": SCOPE,
        }
        try:
            response = self._session.post(self.token_url, json=body, timeout=self._timeout)
        except requests.RequestException as exc:
            raise WhoopError("network", f"partner token: {type(exc).__name__}") from None
        if response.status_code in (400, 401):
            raise WhoopError("invalid_client", "WHOOP refused the partner credentials.", 401)
        if response.status_code != 200:
            raise WhoopError(
                "http_error", f"partner token: HTTP {response.status_code}", response.status_code
            )
        try:
            data = response.json()
            token = data["access_token"]
            lifetime = float(data.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError):
            raise WhoopError("bad_response", "partner token: malformed answer") from None
        if not isinstance(token, str) or not token:
            raise WhoopError("bad_response", "partner token: no access_token")
        self._token = token
        self._expires = self._clock() + lifetime
        self.tokens_fetched += 1

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        """Call the Partner API; on a 401 get a new token and try once more."""
        url = f"{self.api_base}/{path.lstrip('/')}"
        kwargs.setdefault("timeout", self._timeout)
        for attempt in (1, 2):
            token = self.token()
            headers = dict(kwargs.pop("headers", None) or {})
            headers["Authorization"] = f"Bearer {token}"
            try:
                response = self._session.request(method, url, headers=headers, **kwargs)
            except requests.RequestException as exc:
                raise WhoopError("network", f"partner API: {type(exc).__name__}") from None
            if response.status_code != 401 or attempt == 2:
                return response
            response.close()
            self.invalidate(token)
            kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
        raise AssertionError("unreachable")
