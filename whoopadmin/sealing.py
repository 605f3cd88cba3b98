"""Model attributes whose values are stored sealed (AES-256-GCM) and bound to their row."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from flask import current_app
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from whoopadmin.crypto import KeyRing, associated_data


def keyring() -> KeyRing:
    """Return the current app's key ring."""
    return current_app.extensions["whoopadmin.keyring"]


class Sealed:
    """A model attribute kept in the column ``<name>_sealed``; reads open, writes seal.

    The associated data names the table, the row's ``uid`` and the attribute, so a
    ciphertext copied to another row or column fails to open.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.column = f"{name}_sealed"

    def aad(self, obj: SealedMixin) -> bytes:
        """Return the associated data for this attribute of ``obj``."""
        return associated_data(obj.__tablename__, obj.uid, self.name)

    def __get__(self, obj: SealedMixin | None, owner: type) -> str | None | Sealed:
        if obj is None:
            return self
        token = getattr(obj, self.column)
        return None if token is None else keyring().open(token, self.aad(obj))

    def __set__(self, obj: SealedMixin, value: str | None) -> None:
        sealed = None if value is None else keyring().seal(value, self.aad(obj))
        setattr(obj, self.column, sealed)


class SealedMixin:
    """Gives a model the stable ``uid`` that sealed attributes are bound to."""

    uid: Mapped[str] = mapped_column(String(32), unique=True)

    def __init__(self, **kwargs) -> None:
        # The uid must exist before any Sealed attribute is set, so set it first.
        self.uid = kwargs.pop("uid", None) or uuid.uuid4().hex
        super().__init__(**kwargs)

    @classmethod
    def sealed_fields(cls) -> list[Sealed]:
        """Return the Sealed attributes declared on this model."""
        found: dict[str, Sealed] = {}
        for klass in cls.__mro__:
            for value in vars(klass).values():
                if isinstance(value, Sealed):
                    found.setdefault(value.name, value)
        return list(found.values())


def sealed_models(base) -> Iterator[type[SealedMixin]]:
    """Yield every mapped model class that has sealed attributes."""
    for mapper in base.registry.mappers:
        cls = mapper.class_
        if issubclass(cls, SealedMixin) and cls.sealed_fields():
            yield cls
