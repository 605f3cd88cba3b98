"""What the support and audit pages say: events, actions and details in words.

The database keeps codes (``token_refresh_failed``, ``invalid_grant``, ``whoop_revoke_error:
None``); staff read sentences. Each function here turns one kind of code into words and
falls back to a tidy "key: value" form for codes it does not know yet, so an event added
later still reads, if less well.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# --------------------------------------------------------------------------- shared


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """``1 linked member``, ``2 linked members``: a number with its noun agreeing."""
    return f"{count} {singular if count == 1 else (plural or singular + 's')}"


def humanise(key: str) -> str:
    """``whoop_revoke_error`` → ``WHOOP revoke error``; ``api_key`` → ``API key``."""
    words = str(key).replace(".", " ").replace("_", " ").split()
    upper = {"whoop": "WHOOP", "api": "API", "url": "URL", "id": "id", "dns": "DNS"}
    words = [upper.get(w.lower(), w) for w in words]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def value_text(value: Any) -> str:
    """A detail's value as staff read it: lists joined, yes/no, nothing for None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(value_text(v) for v in value) or "none"
    if isinstance(value, Mapping):
        return "; ".join(f"{humanise(k)}: {value_text(v)}" for k, v in value.items())
    return str(value)


def detail_pairs(details: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(label, value) for each detail worth showing: no None values, no token-ish keys,
    and an ``old``/``new`` pair shown as one change."""
    details = dict(details or {})
    pairs = []
    if "old" in details and "new" in details:
        old, new = details.pop("old"), details.pop("new")
        pairs.append(("Changed", f"{value_text(old) or '(none)'} → {value_text(new) or '(none)'}"))
    for key, value in details.items():
        if value is None or "token" in key or "secret" in key:
            continue
        pairs.append((humanise(key), value_text(value)))
    return pairs


def detail_text(details: Mapping[str, Any] | None) -> str:
    """The details as one line: ``Label: value · Label: value``."""
    return " · ".join(f"{label}: {value}" for label, value in detail_pairs(details))


def every(seconds: int) -> str:
    """An interval in words: ``every minute``, ``every 5 minutes``, ``every hour``."""
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"every {unit}" if count == 1 else f"every {counted(count, unit)}"
    return f"every {counted(seconds, 'second')}"


# What each periodic job of ``whoopadmin cron`` is for (jobs page).
PERIODIC_PURPOSES = {
    "whoopadmin.setup.jobs.check_due_domains": "DNS checks that are due",
    "whoopadmin.sync.jobs.refresh_due": "Token refreshes before tokens expire",
    "whoopadmin.webhooks.jobs.sweep_events": "Webhooks stored but never queued",
    "whoopadmin.sync.jobs.reconcile_due": "Re-reading recent data (missed webhooks)",
    "whoopadmin.sync.jobs.cleanup_expired": "Clean-up of expired connect links and states",
    "whoopadmin.destinations.service.retry_due": "Delivery retries that are due",
}


# --------------------------------------------------------------------------- link events

# Why a connect failed, in the words support staff use (the code follows in brackets).
CONNECT_FAILURES = {
    "access_denied": "the member declined at WHOOP",
    "invalid_state": "the sign-in link was not valid (forged, truncated or from elsewhere)",
    "state_expired": "the member took more than 10 minutes at WHOOP",
    "state_replayed": "the sign-in was already completed or attempted (a reload or a replay)",
    "session_expired": "the connect link had expired",
    "session_used": "the connect link was already used",
    "missing_code": "WHOOP sent no authorization code back",
    "exchange_failed": "WHOOP did not exchange the authorization code for tokens",
    "missing_scopes": "required permissions were not granted at WHOOP",
    "profile_failed": "WHOOP's profile of the member could not be read",
    "whoop_error": "WHOOP reported an error",
}
# What started a token refresh.
REFRESH_TRIGGERS = {
    "scheduled": "the scheduled refresh",
    "expiring": "a sync, before the token expired",
    "unauthorized": "a sync, after WHOOP answered 401",
    "support": "a staff request",
}
REFRESH_OUTCOMES = {
    "ok": "succeeded",
    "invalid_grant": "WHOOP refused the refresh token (invalid_grant): the member must reconnect",
    "incomplete_token_response": "WHOOP's answer had no tokens in it",
}


def refresh_outcome(code: str | None) -> str:
    """A refresh result code (``ok``, ``invalid_grant``, ``ConnectionError``…) in words."""
    if not code:
        return ""
    if code in REFRESH_OUTCOMES:
        return REFRESH_OUTCOMES[code]
    if code.startswith("oauth_"):
        return f"WHOOP refused the refresh ({code.removeprefix('oauth_')})"
    return f"failed ({code}); retried with back-off"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _failure(reason: str | None) -> str:
    words = CONNECT_FAILURES.get(reason or "")
    return f"{words} ({reason})" if words else (reason or "unknown reason")


def describe_event(kind: str, reason: str | None, details: Mapping[str, Any] | None):
    """(title, detail) of a link event, in words."""
    d = dict(details or {})
    if kind == "connect":
        return "Connected", _session_words(d)
    if kind == "user_reauth":
        words = _session_words(d)
        if d.get("previous_reference_id"):
            words += f"; the reference id was {d['previous_reference_id']}"
        return "Reconnected", words
    if kind == "connect_failed":
        extra = {k: v for k, v in d.items() if k not in ("reason",)}
        detail = _failure(reason)
        if extra.get("whoop_error"):
            detail += f"; WHOOP said {extra.pop('whoop_error')}"
        if extra.get("missing"):
            detail += f"; missing: {value_text(extra.pop('missing'))}"
        rest = detail_text(extra)
        return "Connect failed", detail + (f" · {rest}" if rest else "")
    if kind == "disconnect":
        return "Disconnected", _disconnect_words(d)
    if kind == "token_refresh":
        trigger = REFRESH_TRIGGERS.get(reason or "", reason or "")
        return "Tokens refreshed", f"by {trigger}" if trigger else ""
    if kind == "token_refresh_failed":
        words = refresh_outcome(reason)
        if d.get("failures"):
            words += f"; {_ordinal(int(d['failures']))} failure in a row"
        trigger = REFRESH_TRIGGERS.get(d.get("trigger") or "", d.get("trigger"))
        return "Token refresh failed", words + (f"; started by {trigger}" if trigger else "")
    if kind == "reauth_required":
        return (
            "Reconnect needed",
            "WHOOP no longer accepts this link's refresh token: send the member a reconnect link",
        )
    if kind == "link_error":
        return "Link in error", f"refreshes kept failing ({reason}); the link is retried later"
    if kind == "sync_failed":
        what = d.get("sync") or "a sync"
        if reason == "unauthorized":
            return "Sync failed", f"WHOOP refused the link's tokens (401) during {what}"
        return "Sync failed", f"{reason} during {what}"
    if kind == "backfill_not_queued":
        return (
            "Backfill not queued",
            f"Redis did not answer ({d.get('error')}); the link is kept: press Re-sync",
        )
    return humanise(kind), " · ".join(filter(None, [reason or "", detail_text(d)]))


def _session_words(d: Mapping[str, Any]) -> str:
    words = f"as {d['reference_id']}" if d.get("reference_id") else ""
    if d.get("session"):
        words += f" (connect link {d['session']})"
    return words.strip()


def _disconnect_words(d: Mapping[str, Any]) -> str:
    by = f"by {d['by']}" if d.get("by") else ""
    if d.get("whoop_revoke_error"):
        whoop = f"WHOOP's revocation failed ({d['whoop_revoke_error']}); tokens wiped here"
    elif d.get("whoop_revoked") is False:
        whoop = "no token to revoke at WHOOP; tokens wiped"
    else:
        whoop = "revoked at WHOOP, tokens wiped"
    return f"{by}: {whoop}" if by else whoop[:1].upper() + whoop[1:]


# --------------------------------------------------------------------------- staff actions

ACTIONS = {
    "link.resync": "Re-sync requested",
    "link.refresh_now": "Token refresh requested",
    "link.reconnect_link": "Reconnect link created",
    "link.disconnect": "Disconnected",
    "connection.create": "Connection created",
    "connection.credentials": "Credentials saved",
    "connection.verify_credentials": "Credentials checked with WHOOP",
    "connection.hostname": "Subdomain changed",
    "connection.issuer_record": "Validation record of another issuer saved",
    "connection.issuer_record_cleared": "Validation record of another issuer removed",
    "connection.dns_status": "DNS status changed",
    "connection.whoop_registered": "Registration at WHOOP confirmed",
    "connection.go_live": "Went live",
    "connection.settings": "Settings saved",
    "connection.test_webhook": "Test webhook sent",
    "connect_session.create": "Connect link created",
    "staff.create": "Staff account created",
    "staff.login": "Signed in",
    "staff.activate": "Staff account reactivated",
    "staff.deactivate": "Staff account deactivated",
    "staff.change_role": "Role changed",
    "staff.reset_password": "Password reset",
    "api_key.create": "API key created",
    "api_key.revoke": "API key revoked",
    "destination.create": "Destination created",
    "destination.update": "Destination changed",
    "destination.rotate_secret": "Signing secret rotated",
    "destination.delete": "Destination deleted",
    "destination.test": "Test event sent",
    "delivery.resend": "Delivery re-sent",
    "job.retry": "Failed job retried",
    "job.delete": "Failed job deleted",
}


def action_text(action: str) -> str:
    """A staff action code (``link.resync``) in words."""
    return ACTIONS.get(action) or humanise(action)
