"""The WHOOP API v2 data client: bearer calls, typed errors, retries, lazy refresh, paging.

No Flask here: the caller passes the API base, a token provider and (optionally) the
app's shared ``RateBudget``.

* Every request first takes one unit of the app's budget (``budget.acquire``) and then
  feeds WHOOP's ``X-RateLimit-*`` headers back (``budget.observe``).
* ``meter`` (optional) is called once for every HTTP attempt sent to WHOOP, so the
  caller can count the calls each kind of work costs (``whoopadmin.health.calls``).
* Network errors, timeouts and 5xx are retried with a short exponential backoff; 4xx
  never are, except 429, which pauses the whole app until WHOOP's reset and is retried
  only while the total wait stays within ``max_rate_limit_wait``.
* A 401 asks the token provider once for a fresh token (the provider owns the
  single-flight refresh) and retries once; a second 401 raises ``unauthorized``.
* Neither tokens nor responses ever appear in exception messages or log lines.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import requests

from .api import WhoopError
from .ratelimit import RateBudget

log = logging.getLogger(__name__)

MAX_LIMIT = 25  # WHOOP refuses more than 25 records a page

# Collection name → path under /v2. "sleep" and "workout" are accepted as short names.
COLLECTIONS = {
    "cycle": "/v2/cycle",
    "recovery": "/v2/recovery",
    "activity/sleep": "/v2/activity/sleep",
    "activity/workout": "/v2/activity/workout",
    "sleep": "/v2/activity/sleep",
    "workout": "/v2/activity/workout",
}

_RETRYABLE_STATUS = frozenset({500, 502, 503, 504})


class TokenProvider(Protocol):
    """Where the client gets access tokens; the refresh itself happens elsewhere."""

    def token(self) -> str:
        """Return the current access token."""
        ...

    def refreshed(self, stale_token: str) -> str:
        """Return a token newer than ``stale_token`` (refreshing once, single-flight)."""
        ...


class StaticToken:
    """A provider for a token that cannot be refreshed (one-off calls, scripts)."""

    def __init__(self, access_token: str) -> None:
        self._token = access_token

    def __repr__(self) -> str:
        return "StaticToken(<hidden>)"

    def token(self) -> str:
        """Return the token."""
        return self._token

    def refreshed(self, stale_token: str) -> str:
        """There is no refresh: the same token, so the client reports ``unauthorized``."""
        return self._token


def format_time(value: datetime | str | None) -> str | None:
    """Render a timestamp as WHOOP expects: ISO 8601 UTC with milliseconds (``...T..:..:...123Z``).

    Strings are passed through untouched; naive datetimes are refused (ambiguous).
    """
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class WhoopClient:
    """Read one member's data from WHOOP API v2.

    ``access_token_provider`` is a ``TokenProvider`` (or a plain token string, which
    cannot be refreshed). ``budget`` is the app's shared ``RateBudget``; without one the
    client still honours 429s, but only for itself. ``session`` is closed by ``close()``
    only when the client created it.
    """

    def __init__(
        self,
        api_base: str,
        access_token_provider: TokenProvider | str,
        *,
        budget: RateBudget | None = None,
        session: requests.Session | None = None,
        timeout: float = 10,
        max_retries: int = 3,
        backoff: float = 0.5,
        backoff_max: float = 8.0,
        max_rate_limit_wait: float = 120.0,
        budget_timeout: float = 60.0,
        meter: Callable[[], None] | None = None,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.meter = meter
        if isinstance(access_token_provider, str):
            access_token_provider = StaticToken(access_token_provider)
        self.tokens = access_token_provider
        self.budget = budget
        self._own_session = session is None
        self.session = session or requests.Session()
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.max_rate_limit_wait = max_rate_limit_wait
        self.budget_timeout = budget_timeout
        self.requests_sent = 0  # every HTTP attempt, for logs and tests

    def close(self) -> None:
        """Close the HTTP session if this client opened it."""
        if self._own_session:
            self.session.close()

    def __enter__(self) -> WhoopClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one call ----------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``path`` (under the API base, e.g. ``/v2/cycle``) and return the parsed JSON."""
        token = self.tokens.token()
        refreshed = False
        failures = 0  # network errors and 5xx so far
        waited = 0.0  # seconds spent waiting for 429 resets
        limited = 0  # 429s so far: bounded even if WHOOP says "reset in 0 s"
        while True:
            try:
                return self._send(path, params, token)
            except _Unauthorized:
                if refreshed:
                    raise WhoopError(
                        "unauthorized", "WHOOP refused the refreshed access token (401).", 401
                    ) from None
                refreshed = True
                fresh = self.tokens.refreshed(token)
                if not fresh or fresh == token:
                    raise WhoopError(
                        "unauthorized", "WHOOP refused the access token (401).", 401
                    ) from None
                token = fresh
                log.info("WHOOP answered 401 for %s; retrying once with a fresh token", path)
            except _RateLimited as exc:
                if self.budget is not None:
                    self.budget.pause_for(exc.reset)
                limited += 1
                if waited + exc.reset > self.max_rate_limit_wait or limited > 5:
                    raise WhoopError(
                        "rate_limited",
                        f"WHOOP's rate limit was reached (429); reset in {exc.reset:g} s.",
                        429,
                        retry_after=exc.reset,
                    ) from None
                log.warning("WHOOP answered 429 for %s; waiting %.1f s", path, exc.reset)
                waited += exc.reset
                if self.budget is None:
                    time.sleep(exc.reset)
                # With a budget the pause is shared: the next acquire() waits it out.
            except WhoopError as exc:
                if exc.code not in ("network", "server_error") or failures >= self.max_retries:
                    raise
                failures += 1
                delay = min(self.backoff_max, self.backoff * 2 ** (failures - 1))
                delay *= random.uniform(0.5, 1.0)  # jitter: retries from many workers spread out
                log.info(
                    "WHOOP call %s failed (%s); retry %d/%d in %.2f s",
                    path,
                    exc.code,
                    failures,
                    self.max_retries,
                    delay,
                )
                time.sleep(delay)

    def _send(self, path: str, params: Mapping[str, Any] | None, token: str) -> Any:
        """One attempt: budget, request, status → typed error, JSON."""
        if self.budget is not None:
            # Waiting past the timeout raises BudgetExhausted (a WhoopError "rate_limited").
            self.budget.acquire(timeout=self.budget_timeout)
        self.requests_sent += 1
        if self.meter is not None:
            self.meter()
        try:
            response = self.session.get(
                self.api_base + path,
                params=params,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                timeout=self.timeout,
            )
        except requests.Timeout:
            raise WhoopError("network", f"WHOOP did not answer {path} in time.") from None
        except requests.RequestException as exc:
            raise WhoopError(
                "network", f"WHOOP did not answer {path} ({type(exc).__name__})."
            ) from None
        with response:
            if self.budget is not None:
                self.budget.observe(response.headers)
            status = response.status_code
            if status == 200:
                try:
                    return response.json()
                except ValueError:
                    raise WhoopError(
                        "bad_response", f"WHOOP's answer to {path} was not JSON.", status
                    ) from None
            if status in (401, 403) and _insufficient_scope(response):
                # A missing scope is not cured by a refresh: the member must re-consent.
                # RFC 6750 3.1 answers it with 403, WHOOP's API (and sandbox) with 401.
                raise WhoopError(
                    "insufficient_scope", f"The grant lacks the scope {path} needs.", status
                )
            if status == 401:
                raise _Unauthorized()
            if status == 404:
                raise WhoopError("not_found", f"WHOOP has no {path} (404).", 404)
            if status == 429:
                raise _RateLimited(_reset_seconds(response.headers))
            if status >= 500:
                raise WhoopError(
                    "server_error", f"WHOOP answered HTTP {status} for {path}.", status
                )
            if status == 400:
                raise WhoopError("bad_request", f"WHOOP refused the request {path} (400).", 400)
            raise WhoopError("http_error", f"WHOOP answered HTTP {status} for {path}.", status)

    # -- paging ------------------------------------------------------------------------

    def iter_pages(
        self,
        kind: str,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        limit: int = MAX_LIMIT,
    ) -> Iterator[list[dict]]:
        """Yield each page's records of a collection, newest first.

        The same ``start``/``end`` go with every page; ``nextToken`` goes out and
        ``next_token`` comes back, and an absent, empty or null one ends the walk. A
        token WHOOP already sent raises ``bad_response`` rather than looping forever.
        """
        path = COLLECTIONS.get(kind)
        if path is None:
            raise ValueError(f"unknown WHOOP collection {kind!r}")
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        base: dict[str, Any] = {"limit": limit}
        if start is not None:
            base["start"] = format_time(start)
        if end is not None:
            base["end"] = format_time(end)
        seen: set[str] = set()
        next_token: str | None = None
        while True:
            params = dict(base)
            if next_token:
                params["nextToken"] = next_token
            body = self.get(path, params)
            records = body.get("records") if isinstance(body, dict) else None
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise WhoopError("bad_response", f"WHOOP's page of {path} has no records list.")
            yield records
            next_token = body.get("next_token")
            if next_token is None or next_token == "":
                return
            if not isinstance(next_token, str):
                raise WhoopError("bad_response", f"WHOOP's next_token for {path} is not text.")
            if next_token in seen:
                raise WhoopError(
                    "bad_response", f"WHOOP repeated a next_token for {path}; paging stopped."
                )
            seen.add(next_token)

    def iter_collection(
        self,
        kind: str,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        limit: int = MAX_LIMIT,
    ) -> Iterator[dict]:
        """Yield every record of ``cycle``, ``recovery``, ``activity/sleep`` or
        ``activity/workout`` in ``[start, end)``, following ``next_token`` to the end."""
        for page in self.iter_pages(kind, start, end, limit):
            yield from page

    # -- by id ---------------------------------------------------------------------------

    def cycle(self, cycle_id: int) -> dict:
        """One cycle; ``not_found`` if WHOOP no longer has it."""
        return self._object(f"/v2/cycle/{_int64(cycle_id)}")

    def cycle_sleep(self, cycle_id: int) -> dict:
        """The main sleep of a cycle."""
        return self._object(f"/v2/cycle/{_int64(cycle_id)}/sleep")

    def cycle_recovery(self, cycle_id: int) -> dict:
        """The recovery of a cycle (WHOOP has no recovery-by-id route)."""
        return self._object(f"/v2/cycle/{_int64(cycle_id)}/recovery")

    def sleep(self, sleep_id: str) -> dict:
        """One sleep (or nap) by UUID."""
        return self._object(f"/v2/activity/sleep/{_uuid(sleep_id)}")

    def workout(self, workout_id: str) -> dict:
        """One workout by UUID."""
        return self._object(f"/v2/activity/workout/{_uuid(workout_id)}")

    def profile(self) -> dict:
        """The basic profile: ``user_id``, ``email``, ``first_name``, ``last_name``."""
        data = self._object("/v2/user/profile/basic")
        user_id = data.get("user_id")
        if isinstance(user_id, bool) or not isinstance(user_id, int):
            raise WhoopError("bad_response", "WHOOP's profile has no valid user_id.")
        return data

    def body_measurement(self) -> dict:
        """Height (m), weight (kg) and max heart rate (bpm)."""
        return self._object("/v2/user/measurement/body")

    def _object(self, path: str) -> dict:
        data = self.get(path)
        if not isinstance(data, dict):
            raise WhoopError("bad_response", f"WHOOP's answer to {path} is not an object.")
        return data


class _Unauthorized(Exception):
    """A 401 the caller may cure with one refresh (internal)."""


class _RateLimited(Exception):
    """A 429, with the seconds until WHOOP's window resets (internal)."""

    def __init__(self, reset: float) -> None:
        super().__init__(reset)
        self.reset = reset


def _reset_seconds(headers: Mapping[str, str]) -> float:
    """Seconds until a 429 lifts: Retry-After, else X-RateLimit-Reset, else a minute."""
    for name in ("Retry-After", "X-RateLimit-Reset"):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw.strip())
        except ValueError:
            continue  # an HTTP-date Retry-After: fall back to the other header
        if value >= 0:
            return min(value, 86_400.0)
    return 60.0


def _insufficient_scope(response: requests.Response) -> bool:
    if "insufficient_scope" in response.headers.get("WWW-Authenticate", ""):
        return True
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("error") == "insufficient_scope"


def _int64(value: Any) -> int:
    """Cycle ids are int64; refuse anything else before it reaches a URL."""
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
        raise ValueError("cycle ids are 64-bit integers")
    return value


def _uuid(value: Any) -> str:
    """Sleep and workout ids are UUIDs; refuse anything else before it reaches a URL."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError("sleep and workout ids are UUIDs") from None
