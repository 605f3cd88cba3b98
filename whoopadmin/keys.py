"""Key rotation: re-seal every stored secret with the first key of the ring.

Safe while workers run. A link's tokens change under workers' feet: a refresh reads the
link, asks WHOOP (which retires the old refresh token at once) and writes the new tokens
only if ``token_version`` is still the one it read. Rotation writes a link's sealed
columns under the same compare-and-swap: a row whose version moved since it was read is
read again and re-sealed from its new values, so rotation never writes back a token a
refresh has replaced. Rotation does not bump the version itself (the plaintext does not
change), so a refresh in flight still wins its own compare-and-swap afterwards.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, update

from whoopadmin.connect.models import Link
from whoopadmin.crypto import KeyRing, associated_data
from whoopadmin.extensions import db
from whoopadmin.sealing import keyring, sealed_models

log = logging.getLogger(__name__)

# Links re-sealed per transaction: short transactions keep refreshes from waiting long.
LINK_BATCH = 200
# Attempts per link when refreshes keep moving its version (each one is a real change).
MAX_ATTEMPTS = 50


class RotationError(RuntimeError):
    """A link whose tokens kept changing through every attempt (not expected)."""


@dataclass
class RotationResult:
    """How many sealed values were re-encrypted, and how many had used an older key."""

    resealed: int = 0
    from_old_keys: int = 0
    retried: int = 0  # links read again because a refresh changed them meanwhile


def rotate_keys() -> RotationResult:
    """Re-encrypt every sealed value with the primary key.

    Every link is opened first, so a key missing from the ring stops the run before
    anything is written (links are then written a batch per transaction).
    """
    ring = keyring()
    result = RotationResult()
    _check_links(ring)
    for model in sealed_models(db.Model):
        if model is Link:
            continue
        fields = model.sealed_fields()
        for row in db.session.scalars(db.select(model).execution_options(yield_per=500)):
            for field in fields:
                token = getattr(row, field.column)
                if token is None:
                    continue
                if ring.sealed_with(token) != ring.primary_id:
                    result.from_old_keys += 1
                setattr(row, field.column, ring.reseal(token, field.aad(row)))
                result.resealed += 1
    db.session.commit()
    _rotate_links(ring, result)
    return result


def _link_rows(where, limit: int) -> list:
    """Links' ids, uids, token versions and sealed columns, by id."""
    columns = [getattr(Link, field.column) for field in Link.sealed_fields()]
    query = select(Link.id, Link.uid, Link.token_version, *columns).where(where)
    return db.session.execute(query.order_by(Link.id).limit(limit)).all()


def _sealed_values(row):
    """(column, associated data, sealed value) of a link row's non-empty sealed columns."""
    for field in Link.sealed_fields():
        token = getattr(row, field.column)
        if token is not None:
            yield field.column, associated_data(Link.__tablename__, row.uid, field.name), token


def _check_links(ring: KeyRing) -> None:
    """Open every link's sealed values (CryptoError if one cannot be), writing nothing."""
    last_id = 0
    while rows := _link_rows(Link.id > last_id, LINK_BATCH):
        for row in rows:
            for _column, aad, token in _sealed_values(row):
                ring.open(token, aad)
        last_id = rows[-1].id
    db.session.rollback()


def _rotate_links(ring: KeyRing, result: RotationResult) -> None:
    """Re-seal every link's sealed columns, a batch per transaction, under the CAS."""
    last_id = 0
    while rows := _link_rows(Link.id > last_id, LINK_BATCH):
        for row in rows:
            _reseal_link(ring, row, result)
        db.session.commit()
        last_id = rows[-1].id


def _reseal_link(ring: KeyRing, row, result: RotationResult) -> None:
    """Re-seal one link; read it again whenever its token version moved meanwhile."""
    for _ in range(MAX_ATTEMPTS):
        values, old_keys = {}, 0
        for column, aad, token in _sealed_values(row):
            if ring.sealed_with(token) != ring.primary_id:
                old_keys += 1
            values[column] = ring.reseal(token, aad)
        if not values:
            return
        written = db.session.execute(
            update(Link)
            .where(Link.id == row.id, Link.token_version == row.token_version)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if written.rowcount == 1:
            result.resealed += len(values)
            result.from_old_keys += old_keys
            return
        result.retried += 1
        found = _link_rows(Link.id == row.id, 1)
        if not found:  # deleted meanwhile: nothing left to re-seal
            return
        row = found[0]
    raise RotationError(f"link {row.id} kept changing; run `whoopadmin keys rotate` again")
