"""Token refresh: single-flight per link across processes (Redis lock + compare-and-swap).

WHOOP refresh tokens are single use: two refreshes racing with the same refresh token
make the second fail with ``invalid_grant`` and kill a healthy link. So a refresh holds a
per-link Redis lock, re-reads the link under it (someone may have refreshed already), and
writes the new tokens only if the link's ``token_version`` is still the one it started
from — a writer whose lock expired can never overwrite a newer token.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import requests
from authlib.integrations.base_client import OAuthError
from flask import current_app
from redis.exceptions import LockError
from sqlalchemy import case, update

from whoopadmin.audit import utcnow
from whoopadmin.connect.models import Link, LinkEvent
from whoopadmin.connect.service import oauth_client
from whoopadmin.dbutil import relaxed_durability
from whoopadmin.destinations.service import emit
from whoopadmin.extensions import db
from whoopadmin.health import calls
from whoopadmin.redisconn import get_redis
from whoopadmin.sealing import keyring
from whoopadmin.setup.models import Connection
from whoopadmin.whoop.api import WhoopError

log = logging.getLogger(__name__)

REFRESH_AHEAD = timedelta(minutes=15)
MAX_FAILURES = 5
LOCK_TIMEOUT = 60
# How often a refresh that waits for another one's lock tries again. redis-py's default,
# 0.1 s, is many refreshes long: in a refresh storm a worker that lost a race sat idle.
LOCK_POLL = 0.005


# The status reason of a link WHOOP refused data for lack of scope (sync.service sets it).
SCOPE_ERROR = "insufficient_scope"
_scope_error = (Link.status == "error") & Link.status_reason.startswith(
    SCOPE_ERROR, autoescape=True
)


class RefreshFailed(Exception):
    """A transient refresh failure (network, 5xx, lock busy): retry later."""


def link_event(link: Link, kind: str, reason: str, **details) -> None:
    """Add an event to the link's timeline (committed by the caller)."""
    db.session.add(
        LinkEvent(
            connection_id=link.connection_id,
            link_id=link.id,
            kind=kind,
            reason=reason,
            details=details,
        )
    )


def _reload(link_id: int) -> Link | None:
    return db.session.get(Link, link_id, populate_existing=True)


def refresh_link(
    link_id: int, reason: str, *, seen_version: int | None = None, force: bool = False
) -> str:
    """Refresh one link's tokens if still needed; return the outcome.

    Outcomes: ``refreshed``, ``not_needed`` (fresh, or someone else refreshed since
    ``seen_version``), ``reauth_required``, ``inactive``. Transient failures raise
    RefreshFailed after recording them.
    """
    lock = get_redis().lock(
        f"whoopadmin:refresh-lock:{link_id}",
        timeout=LOCK_TIMEOUT,
        sleep=LOCK_POLL,
        blocking_timeout=LOCK_TIMEOUT,
    )
    if not lock.acquire():
        raise RefreshFailed("another refresh of this link is still running")
    try:
        # Always wait for the disk: WHOOP has already rotated the refresh token, and a
        # commit lost in a crash would leave the link holding a dead one.
        with relaxed_durability(False):
            return _refresh_locked(link_id, reason, seen_version, force)
    finally:
        try:
            lock.release()
        except LockError:
            log.warning("refresh lock of link %s expired before release", link_id)


def _refresh_locked(link_id: int, reason: str, seen_version: int | None, force: bool) -> str:
    db.session.rollback()  # see what other processes committed while we waited
    link = _reload(link_id)
    if link is None or link.status not in ("active", "error") or link.refresh_token_sealed is None:
        return "inactive"
    if seen_version is not None and link.token_version != seen_version:
        return "not_needed"  # refreshed by someone else while we waited for the lock
    now = utcnow()
    if (
        seen_version is None
        and not force
        and link.access_expires_at is not None
        and link.access_expires_at > now + REFRESH_AHEAD
    ):
        return "not_needed"
    connection = db.session.get(Connection, link.connection_id)
    version = link.token_version
    try:
        calls.count(connection.id, calls.REFRESH)
        with oauth_client(connection) as client:
            token = client.refresh_token(
                current_app.config["WHOOP_TOKEN_URL"],
                refresh_token=link.refresh_token,
                scope=requested_scope(link),
                timeout=float(current_app.config["WHOOP_TIMEOUT"]),
            )
    except OAuthError as exc:
        if exc.error == "invalid_grant":
            link.status = "reauth_required"
            link.status_reason = "WHOOP refused the refresh token (invalid_grant)"
            link.last_refresh_at = now
            link.last_refresh_result = "invalid_grant"
            link_event(link, "token_refresh_failed", "invalid_grant", trigger=reason)
            link_event(link, "reauth_required", "invalid_grant")
            db.session.commit()
            emit(
                link.connection_id,
                "access_revoked",
                {"reason": "invalid_grant", "status": "reauth_required"},
                link=link,
            )
            return "reauth_required"
        return _transient(link, reason, f"oauth_{str(exc.error)[:40]}")
    except (requests.RequestException, ValueError) as exc:
        return _transient(link, reason, type(exc).__name__)
    access, refresh = token.get("access_token"), token.get("refresh_token")
    if not access or not refresh:
        return _transient(link, reason, "incomplete_token_response")
    try:
        lifetime = int(token.get("expires_in") or 3600)
    except (TypeError, ValueError):
        lifetime = 3600
    ring = keyring()
    values = {
        "access_token_sealed": ring.seal(access, Link.access_token.aad(link)),
        "refresh_token_sealed": ring.seal(refresh, Link.refresh_token.aad(link)),
        "token_version": version + 1,
        "access_expires_at": now + timedelta(seconds=max(0, lifetime)),
        "refresh_failures": 0,
        "last_refresh_at": now,
        "last_refresh_result": "ok",
        # A refresh cures refresh failures, not a missing scope: only the member can.
        "status": case((_scope_error, Link.status), else_="active"),
        "status_reason": case((_scope_error, Link.status_reason), else_=None),
        "updated_at": now,
    }
    before = link.scopes
    granted = granted_scopes(before, token)
    if granted != before:
        values["scopes"] = granted
    # Compare-and-swap: only the writer that started from the current version wins.
    result = db.session.execute(
        update(Link).where(Link.id == link.id, Link.token_version == version).values(**values)
    )
    if result.rowcount != 1:
        db.session.rollback()
        log.error("link %s: refresh lost a race after its lock expired", link.id)
        return "not_needed"
    link_event(link, "token_refresh", reason, version=version + 1)
    if granted != before:
        _scope_change(link, before, granted)
    db.session.commit()
    return "refreshed"


def requested_scope(link: Link) -> str | None:
    """The ``scope`` a refresh asks for: what the member granted (RFC 6749 6).

    WHOOP's documentation shows ``scope=offline``, but a server that honours the
    parameter then narrows the grant to ``offline`` alone. Asking for the granted scopes
    keeps them on such a server and changes nothing on one that ignores the parameter.
    Without a stored grant the parameter is left out, which RFC 6749 6 reads as "the
    scope originally granted".
    """
    return " ".join(sorted(link.scopes.split())) if link.scopes else None


def granted_scopes(stored: str | None, token: dict) -> str | None:
    """The link's scopes after a refresh: WHOOP's answer if it names a grant, else as before."""
    answer = token.get("scope")
    if not isinstance(answer, str) or not answer.split():
        return stored
    granted = " ".join(sorted(set(answer.split())))
    if stored is not None and set(granted.split()) == set(stored.split()):
        return stored  # the same grant in another order is no change
    if len(granted) > 500:  # not a WHOOP grant: keep what we know
        log.warning("ignored an oversized scope in a refresh response")
        return stored
    return granted


def _scope_change(link: Link, before: str | None, after: str | None) -> None:
    """Put a changed grant on the timeline; a narrower one as ``scopes_narrowed``."""
    old, new = set((before or "").split()), set((after or "").split())
    removed, added = sorted(old - new), sorted(new - old)
    kind = "scopes_narrowed" if removed else "scopes_changed"
    link_event(link, kind, "refresh", removed=removed, added=added, scopes=after)


def _transient(link: Link, reason: str, error: str) -> str:
    link.refresh_failures = (link.refresh_failures or 0) + 1
    link.last_refresh_at = utcnow()
    link.last_refresh_result = error
    link_event(link, "token_refresh_failed", error, trigger=reason, failures=link.refresh_failures)
    turned_error = link.refresh_failures >= MAX_FAILURES and link.status == "active"
    if turned_error:
        link.status = "error"
        link.status_reason = f"{link.refresh_failures} refreshes in a row failed ({error})"
        link_event(link, "link_error", error)
    db.session.commit()
    if turned_error:
        emit(
            link.connection_id,
            "connection_error",
            {"reason": error, "failures": link.refresh_failures},
            link=link,
        )
    raise RefreshFailed(f"refresh of link {link.id} failed: {error}")


class LinkTokens:
    """The WhoopClient's token provider for one link: proactive, and lazy on a 401."""

    def __init__(self, link_id: int) -> None:
        self.link_id = link_id

    def __repr__(self) -> str:
        return f"LinkTokens(link_id={self.link_id})"

    def token(self) -> str:
        """The current access token, refreshed first if it is about to expire."""
        link = _reload(self.link_id)
        if link is None or link.status not in ("active", "error"):
            raise WhoopError("unauthorized", "the link is not active")
        if link.access_expires_at is not None and link.access_expires_at <= utcnow() + timedelta(
            seconds=60
        ):
            refresh_link(self.link_id, "expiring", seen_version=link.token_version)
            link = _reload(self.link_id)
        return link.access_token or ""

    def refreshed(self, stale_token: str) -> str:
        """After a 401: a newer token (one refresh, single-flight), or the same one."""
        link = _reload(self.link_id)
        if link is None:
            return stale_token
        if link.access_token and link.access_token != stale_token:
            return link.access_token  # another worker refreshed already
        try:
            refresh_link(self.link_id, "unauthorized", seen_version=link.token_version)
        except RefreshFailed:
            return stale_token
        link = _reload(self.link_id)
        return (link.access_token if link is not None else None) or stale_token
