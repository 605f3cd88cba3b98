"""The Standard Webhooks headers on deliveries (https://www.standardwebhooks.com). No Flask.

Beside ``whoopadmin-signature`` every delivery carries::

    webhook-id: <the event id, the same for every attempt and re-send>
    webhook-timestamp: <unix seconds, the same as whoopadmin-signature's t>
    webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">

The HMAC key is **not** the secret string (that is whoopadmin-signature's key) but the bytes
that the part after ``whsec_`` base64-decodes to, as the spec says. Secrets made since
Standard Webhooks support are ``whsec_`` + the standard base64 of 32 random bytes, so any
Standard Webhooks library takes them as they are. Older secrets are ``whsec_`` + URL-safe
base64 (``-`` and ``_`` where standard base64 has ``+`` and ``/``); their key is decoded
from that alphabet, so a library verifies them once ``-`` → ``+`` and ``_`` → ``/``.
During a rotation's overlap the header carries one ``v1,`` signature per secret,
space-separated, the new one first.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
PREFIX = "whsec_"
# The spec asks for keys of 24 to 64 bytes; ours are 32.
KEY_BYTES = 32


def new_secret(random_bytes: bytes) -> str:
    """The ``whsec_`` secret for these key bytes (standard base64, as the spec has it)."""
    return PREFIX + base64.b64encode(random_bytes).decode("ascii")


def key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret: its base64 part, decoded (either alphabet)."""
    if not secret or not secret.startswith(PREFIX):
        raise ValueError("a signing secret starts with whsec_")
    text = secret[len(PREFIX) :].rstrip("=").translate(str.maketrans("-_", "+/"))
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the signing secret is not base64 after whsec_") from None
    if not raw:
        raise ValueError("the signing secret is empty")
    return raw


def signature(secret: str, msg_id: str, t: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` with ``secret``."""
    content = f"{msg_id}.{int(t)}.".encode() + body
    digest = hmac.new(key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secrets: Sequence[str], msg_id: str, t: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, with one signature per secret (new first)."""
    if not secrets:
        raise ValueError("a signing secret is required")
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(int(t)),
        SIGNATURE_HEADER: " ".join(signature(s, msg_id, t, body) for s in secrets),
    }
