"""Staff users."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from whoopadmin.audit import utcnow
from whoopadmin.extensions import db, login_manager
from whoopadmin.types import UTCDateTime

ROLES = ("operator", "support")


class StaffUser(UserMixin, db.Model):
    """A person who signs in to the admin pages, as an operator or support staff."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The authenticator app, if any (loaded with the user: the MFA guard reads it on
    # every page).
    totp = relationship("TotpDevice", uselist=False, lazy="joined", viewonly=True)

    @property
    def is_active(self) -> bool:
        """Deactivated staff cannot sign in (flask-login reads this)."""
        return self.active

    @property
    def is_operator(self) -> bool:
        """Return whether this user may open operator-only pages."""
        return self.role == "operator"

    @property
    def mfa_enrolled(self) -> bool:
        """Return whether this user signs in with a confirmed authenticator app."""
        return self.totp is not None and self.totp.confirmed_at is not None

    def get_id(self) -> str:
        """flask-login's identity: the user id (the server-side session decides the rest)."""
        return str(self.id)

    def set_password(self, password: str) -> None:
        """Store a salted hash of ``password``."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """Return whether ``password`` matches the stored hash."""
        return check_password_hash(self.password_hash, password)


@login_manager.user_loader
def load_user(identity: str) -> StaffUser | None:
    """Load the signed-in user: only while the cookie's session id names a live session."""
    from whoopadmin.sessions.login import load_user as load

    return load(identity)
