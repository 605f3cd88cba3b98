"""Staff users."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column
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
    # Bumped on password reset or deactivation so existing sessions stop working.
    session_version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def is_active(self) -> bool:
        """Deactivated staff cannot sign in (flask-login reads this)."""
        return self.active

    @property
    def is_operator(self) -> bool:
        """Return whether this user may open operator-only pages."""
        return self.role == "operator"

    def get_id(self) -> str:
        """Session identity: the id and the session version, so a reset logs others out."""
        return f"{self.id}:{self.session_version}"

    def set_password(self, password: str) -> None:
        """Store a salted hash of ``password``."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """Return whether ``password`` matches the stored hash."""
        return check_password_hash(self.password_hash, password)


@login_manager.user_loader
def load_user(identity: str) -> StaffUser | None:
    """Load the signed-in user from the session, refusing stale session versions."""
    user_id, _, version = identity.partition(":")
    if not user_id.isdigit() or not version.isdigit():
        return None
    user = db.session.get(StaffUser, int(user_id))
    if user is None or user.session_version != int(version) or not user.active:
        return None
    return user
