"""Secrets at rest: an AES-256-GCM key ring with versioned, row-bound ciphertexts.

No Flask here. A sealed value looks like ``v1.<key id>.<base64url(nonce + ciphertext)>``.
The key id is derived from the key itself, so a ciphertext names the key that sealed it
without revealing anything about it, and associated data binds every ciphertext to the
row and column it was written for: copying it elsewhere makes it fail to open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12


class CryptoError(Exception):
    """Base class for every key ring failure; messages never contain key material."""


class KeyConfigError(CryptoError):
    """The configured keys are missing or malformed."""


class UnknownKeyError(CryptoError):
    """A ciphertext names a key that is not in the key ring."""


class DecryptError(CryptoError):
    """A ciphertext is malformed, tampered with, or bound to another row or column."""


def generate_key() -> str:
    """Return a new random 32-byte key, base64 encoded, for WHOOPADMIN_ENCRYPTION_KEYS."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def key_id(key: bytes) -> str:
    """Return the short public identifier of a key (a hash prefix, not the key)."""
    return hashlib.sha256(b"whoopadmin-key-id:" + key).hexdigest()[:8]


def associated_data(table: str, row: str, column: str) -> bytes:
    """Return the associated data that binds a ciphertext to one row's column."""
    return f"whoopadmin:{table}:{row}:{column}".encode()


def keyed_hash(key: bytes, value: str) -> str:
    """Return a hex HMAC-SHA256 of ``value``: searchable equality without the value itself."""
    import hmac

    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def _decode_key(text: str, position: int) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyConfigError(
            f"encryption key #{position} is not valid base64 "
            "(generate one with `whoopadmin keys generate`)"
        ) from None
    if len(raw) != KEY_BYTES:
        raise KeyConfigError(
            f"encryption key #{position} decodes to {len(raw)} bytes; AES-256 needs {KEY_BYTES}"
        )
    return raw


class KeyRing:
    """An ordered set of keys: the first seals, every key opens."""

    def __init__(self, keys: Iterable[bytes]):
        self._keys: dict[str, AESGCM] = {}
        self.primary_id = ""
        for key in keys:
            kid = key_id(key)
            if not self.primary_id:
                self.primary_id = kid
            self._keys.setdefault(kid, AESGCM(key))
        if not self._keys:
            raise KeyConfigError("no encryption key configured")

    @classmethod
    def from_config(cls, value: str | Iterable[str]) -> KeyRing:
        """Build a key ring from a comma-separated string (or list) of base64 keys."""
        parts = value.split(",") if isinstance(value, str) else list(value)
        texts = [p.strip() for p in parts if p and p.strip()]
        return cls(_decode_key(text, n) for n, text in enumerate(texts, start=1))

    @property
    def key_ids(self) -> list[str]:
        """The ids of every key, the primary first."""
        return list(self._keys)

    def seal(self, plaintext: str, aad: bytes) -> str:
        """Encrypt ``plaintext`` with the primary key, bound to ``aad``."""
        nonce = os.urandom(NONCE_BYTES)
        body = self._keys[self.primary_id].encrypt(nonce, plaintext.encode("utf-8"), aad)
        blob = base64.urlsafe_b64encode(nonce + body).decode("ascii").rstrip("=")
        return f"{VERSION}.{self.primary_id}.{blob}"

    def sealed_with(self, token: str) -> str:
        """Return the id of the key a sealed value names."""
        return self._split(token)[0]

    def open(self, token: str, aad: bytes) -> str:
        """Decrypt a sealed value; raise a CryptoError subclass on any failure."""
        kid, blob = self._split(token)
        aead = self._keys.get(kid)
        if aead is None:
            raise UnknownKeyError(
                f"secret was sealed with key id {kid}, which is not in "
                "WHOOPADMIN_ENCRYPTION_KEYS (add the old key back after the new one)"
            )
        try:
            raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
        except (binascii.Error, ValueError):
            raise DecryptError("sealed secret is not valid base64") from None
        if len(raw) <= NONCE_BYTES:
            raise DecryptError("sealed secret is truncated")
        try:
            plain = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
        except InvalidTag:
            raise DecryptError(
                "sealed secret failed authentication (tampered, or moved from another row)"
            ) from None
        return plain.decode("utf-8")

    def reseal(self, token: str, aad: bytes) -> str:
        """Open a sealed value and seal it again under the primary key."""
        return self.seal(self.open(token, aad), aad)

    @staticmethod
    def _split(token: str) -> tuple[str, str]:
        parts = token.split(".") if isinstance(token, str) else []
        if len(parts) != 3 or parts[0] != VERSION:
            raise DecryptError("not a whoopadmin sealed secret (unknown format or version)")
        return parts[1], parts[2]
