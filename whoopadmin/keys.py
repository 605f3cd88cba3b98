"""Key rotation: re-seal every stored secret with the first key of the ring."""

from __future__ import annotations

from dataclasses import dataclass

from whoopadmin.extensions import db
from whoopadmin.sealing import keyring, sealed_models


@dataclass
class RotationResult:
    """How many sealed values were re-encrypted, and how many had used an older key."""

    resealed: int = 0
    from_old_keys: int = 0


def rotate_keys() -> RotationResult:
    """Re-encrypt every sealed value with the primary key, in one transaction."""
    ring = keyring()
    result = RotationResult()
    for model in sealed_models(db.Model):
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
    return result
