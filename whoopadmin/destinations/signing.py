"""The ``whoopadmin-signature`` header on deliveries. Plain Python, no Flask.

A delivery carries ``whoopadmin-signature: t=<unix seconds>,v1=<hex>`` where ``<hex>`` is
the lowercase hex HMAC-SHA256, keyed with the destination's signing secret, of the
timestamp, a dot and the raw request body: ``f"{t}.".encode() + body``. A receiver
recomputes it over the bytes it received (before any JSON parsing), compares in constant
time and refuses timestamps older (or newer) than a tolerance, so a captured request
cannot be replayed later. During a secret rotation's overlap a header carries one ``v1=``
per signing secret (the new one first); one match is enough.

The HMAC key is the whole secret string, ``whsec_`` prefix included, as UTF-8. (The
Standard Webhooks headers beside it use another key: see ``standard.py``.)
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

HEADER = "whoopadmin-signature"
SCHEME = "v1"


class SignatureError(ValueError):
    """The signature header is missing, malformed, stale or does not match."""


def _digest(secret: str, body: bytes, t: int) -> str:
    message = f"{t}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str | Sequence[str], body: bytes, t: int | None = None) -> str:
    """Return the header value ``t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`` for ``body``.

    ``secret`` may be a list of secrets (a rotation's overlap): one ``v1=`` for each.
    """
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets or not all(secrets):
        raise ValueError("a signing secret is required")
    t = int(time.time()) if t is None else int(t)
    return f"t={t}," + ",".join(f"{SCHEME}={_digest(s, body, t)}" for s in secrets)


def parse(header: str) -> tuple[int, list[str]]:
    """Split a header into its timestamp and its ``v1`` signatures; SignatureError if bad."""
    t, signatures = None, []
    for part in (header or "").split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t" and value.isdigit() and len(value) <= 12:
            t = int(value)
        elif key == SCHEME:
            signatures.append(value)
    if t is None or not signatures:
        raise SignatureError("the signature header has no timestamp or no v1 signature")
    return t, signatures


def verify(
    secret: str, header: str, body: bytes, tolerance: int = 300, now: float | None = None
) -> int:
    """Check ``header`` against ``body``; return its timestamp, or raise SignatureError.

    ``tolerance`` is the number of seconds the timestamp may differ from ``now`` (default:
    the current time) either way; 0 or less disables the check.
    """
    t, signatures = parse(header)
    now = time.time() if now is None else now
    if tolerance > 0 and abs(now - t) > tolerance:
        raise SignatureError("the signature timestamp is outside the tolerance")
    expected = _digest(secret, body, t)
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise SignatureError("the signature does not match")
    return t
