"""Webhook signature checks (no Flask): WHOOP member webhooks and Partner API webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

# WHOOP sends milliseconds; events older or newer than this are refused (replays).
TOLERANCE_MS = 5 * 60 * 1000


def whoop_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``base64(HMAC-SHA256(secret, timestamp + raw body))``, as WHOOP computes it."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + body, hashlib.sha256)
    return base64.b64encode(digest.digest()).decode("ascii")


def check_whoop(
    secrets: Iterable[str],
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now_ms: int,
) -> str | None:
    """Return None if the signature is good under any of ``secrets``, else a reason code.

    Reasons: ``missing_signature``, ``bad_timestamp``, ``stale_timestamp``,
    ``bad_signature``. Comparisons are constant-time.
    """
    if not timestamp or not signature:
        return "missing_signature"
    # ASCII digits only: str.isdigit() also accepts "²" and the like, which int() refuses.
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 16:
        return "bad_timestamp"
    if abs(now_ms - int(timestamp)) > TOLERANCE_MS:
        return "stale_timestamp"
    given = signature.strip().encode("ascii", "replace")
    ok = False
    for secret in secrets:
        if secret:
            expected = whoop_signature(secret, timestamp, body).encode("ascii")
            # Check every secret (no early exit) so timing says nothing about which matched.
            ok |= hmac.compare_digest(expected, given)
    return None if ok else "bad_signature"


def partner_signature(secret: str, body: bytes) -> str:
    """Lower-case hex HMAC-SHA256 of the raw body (Partner API ``WHOOP-Signed``)."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def check_partner(secret: str | None, signature: str | None, body: bytes) -> str | None:
    """Return None if a Partner API webhook is signed by ``secret``, else a reason code."""
    if not signature:
        return "missing_signature"
    if not secret:
        return "no_signing_secret"
    expected = partner_signature(secret, body).encode("ascii")
    given = signature.strip().lower().encode("ascii", "replace")
    return None if hmac.compare_digest(expected, given) else "bad_signature"
