"""Staff account operations: every change is validated, audited and committed here."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import func, select

from whoopadmin import audit
from whoopadmin.audit import utcnow
from whoopadmin.auth.models import ROLES, StaffUser
from whoopadmin.extensions import db


class StaffError(ValueError):
    """A staff change that cannot be made; the message is shown to the user as is."""


def normalise_email(email: str) -> str:
    """Return the canonical (validated, lower-cased) form of a staff e-mail address."""
    try:
        info = validate_email((email or "").strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise StaffError(f"Not a valid e-mail address: {exc}") from None
    return info.normalized.lower()


def check_password_strength(password: str) -> None:
    """Refuse passwords that are too short or too plain."""
    minimum = int(current_app.config["MIN_PASSWORD_LENGTH"])
    if len(password or "") < minimum:
        raise StaffError(f"The password must have at least {minimum} characters.")
    if password.strip() != password:
        raise StaffError("The password must not start or end with a space.")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise StaffError(f"Unknown role {role!r}: choose one of {', '.join(ROLES)}.")


def find_by_email(email: str) -> StaffUser | None:
    """Return the staff user with this e-mail address, if any."""
    try:
        email = normalise_email(email)
    except StaffError:
        return None
    return db.session.scalar(select(StaffUser).where(StaffUser.email == email))


def create_user(actor, email: str, role: str, password: str) -> StaffUser:
    """Create a staff user; ``actor`` is the operator (or ``"cli"``) doing it."""
    email = normalise_email(email)
    _check_role(role)
    check_password_strength(password)
    if db.session.scalar(select(StaffUser.id).where(StaffUser.email == email)):
        raise StaffError(f"A staff account for {email} already exists.")
    user = StaffUser(email=email, role=role)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    audit.record(actor, "staff.create", user, email=email, role=role)
    db.session.commit()
    return user


def authenticate(email: str, password: str) -> StaffUser | None:
    """Return the active user these credentials belong to, or None (same answer for any miss)."""
    user = find_by_email(email)
    if user is None or not user.check_password(password or ""):
        return None
    return user


def record_login(user: StaffUser) -> None:
    """Note a successful sign-in."""
    user.last_login_at = utcnow()
    audit.record(user, "staff.login", user)
    db.session.commit()


def _active_operators() -> int:
    return db.session.scalar(
        select(func.count(StaffUser.id)).where(
            StaffUser.role == "operator", StaffUser.active.is_(True)
        )
    )


def _guard_last_operator(user: StaffUser) -> None:
    # Nobody could run the wizard or manage staff any more: refuse instead.
    if user.role == "operator" and user.active and _active_operators() <= 1:
        raise StaffError("This is the last active operator; make another operator first.")


def set_active(actor, user: StaffUser, active: bool) -> None:
    """Deactivate or reactivate a staff user; deactivation ends their sessions."""
    if user.active == active:
        return
    if not active:
        if getattr(actor, "id", None) == user.id:
            raise StaffError("You cannot deactivate your own account.")
        _guard_last_operator(user)
        user.session_version += 1
    user.active = active
    audit.record(actor, "staff.activate" if active else "staff.deactivate", user)
    db.session.commit()


def change_role(actor, user: StaffUser, role: str) -> None:
    """Change a staff user's role."""
    _check_role(role)
    if user.role == role:
        return
    if role != "operator":
        _guard_last_operator(user)
    old = user.role
    user.role = role
    audit.record(actor, "staff.change_role", user, old=old, new=role)
    db.session.commit()


def reset_password(actor, user: StaffUser, password: str) -> None:
    """Set a new password and sign the user out everywhere."""
    check_password_strength(password)
    user.set_password(password)
    user.session_version += 1
    audit.record(actor, "staff.reset_password", user)
    db.session.commit()
