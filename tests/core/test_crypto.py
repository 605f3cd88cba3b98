"""The key ring: round trips, tampering, row binding, unknown keys, bad configuration."""

import base64

import pytest

from whoopadmin.crypto import (
    DecryptError,
    KeyConfigError,
    KeyRing,
    UnknownKeyError,
    associated_data,
    generate_key,
    key_id,
)

AAD = associated_data("connections", "row-1", "client_secret")


def test_round_trip_and_fresh_nonce():
    ring = KeyRing.from_config(generate_key())
    a = ring.seal("s3cret-value", AAD)
    b = ring.seal("s3cret-value", AAD)
    assert a != b  # a new nonce every time
    assert "s3cret" not in a
    assert ring.open(a, AAD) == "s3cret-value"
    assert a.startswith(f"v1.{ring.primary_id}.")


def test_unicode_and_empty_values_round_trip():
    ring = KeyRing.from_config(generate_key())
    for value in ("", "ünïcødé ✓", "x" * 5000):
        assert ring.open(ring.seal(value, AAD), AAD) == value


def test_tampered_ciphertext_is_refused():
    ring = KeyRing.from_config(generate_key())
    token = ring.seal("value", AAD)
    prefix, kid, blob = token.split(".")
    flipped = blob[:-2] + ("A" if blob[-2] != "A" else "B") + blob[-1]
    with pytest.raises(DecryptError, match="failed authentication"):
        ring.open(f"{prefix}.{kid}.{flipped}", AAD)
    with pytest.raises(DecryptError, match="truncated"):
        ring.open(f"{prefix}.{kid}.AAAA", AAD)
    with pytest.raises(DecryptError, match="format"):
        ring.open("not-a-token", AAD)
    with pytest.raises(DecryptError, match="format"):
        ring.open(f"v9.{kid}.{blob}", AAD)


@pytest.mark.parametrize(
    "other",
    [
        associated_data("connections", "row-2", "client_secret"),
        associated_data("connections", "row-1", "webhook_signing_secret"),
        associated_data("links", "row-1", "client_secret"),
    ],
)
def test_ciphertext_bound_to_row_and_column(other):
    ring = KeyRing.from_config(generate_key())
    token = ring.seal("value", AAD)
    with pytest.raises(DecryptError):
        ring.open(token, other)


def test_unknown_key_id_names_it():
    old, new = KeyRing.from_config(generate_key()), KeyRing.from_config(generate_key())
    token = old.seal("value", AAD)
    with pytest.raises(UnknownKeyError) as info:
        new.open(token, AAD)
    assert old.primary_id in str(info.value)
    assert "WHOOPADMIN_ENCRYPTION_KEYS" in str(info.value)


def test_first_key_seals_all_keys_open():
    k1, k2 = generate_key(), generate_key()
    old_ring = KeyRing.from_config(k1)
    token = old_ring.seal("value", AAD)
    ring = KeyRing.from_config(f"{k2}, {k1}")
    assert ring.primary_id == key_id(base64.b64decode(k2))
    assert ring.open(token, AAD) == "value"
    resealed = ring.reseal(token, AAD)
    assert ring.sealed_with(resealed) == ring.primary_id
    with pytest.raises(UnknownKeyError):
        old_ring.open(resealed, AAD)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "no encryption key"),
        (" , ", "no encryption key"),
        ("not base64!!", "not valid base64"),
        (base64.b64encode(b"short").decode(), "decodes to 5 bytes"),
    ],
)
def test_bad_key_configuration(value, message):
    with pytest.raises(KeyConfigError, match=message):
        KeyRing.from_config(value)


def test_key_error_messages_hold_no_key_material():
    key = base64.b64encode(b"k" * 31).decode()
    with pytest.raises(KeyConfigError) as info:
        KeyRing.from_config(key)
    assert key not in str(info.value)
