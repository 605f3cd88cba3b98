"""Staff account operations: every change is validated, audited and committed here."""

from __future__ import annotations

import secrets
from functools import cache

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from whoopadmin import audit
from whoopadmin.auth import throttle
from whoopadmin.auth.models import ROLES, StaffUser
from whoopadmin.extensions import db
from whoopadmin.passwords import policy
from whoopadmin.sessions import service as sessions


class StaffError(ValueError):
    """A staff change that cannot be made; the message is shown to the user as is."""


class SignInRefused(Exception):
    """Wrong e-mail or password (one message for both), or a deactivated account."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


WRONG = "Wrong e-mail address or password."


def normalise_email(email: str) -> str:
    """Return the canonical (validated, lower-cased) form of a staff e-mail address."""
    try:
        info = validate_email((email or "").strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise StaffError(f"Not a valid e-mail address: {exc}") from None
    return info.normalized.lower()


def check_password_strength(password: str, email: str = "") -> None:
    """Refuse passwords that are too short, too common or too easy to guess."""
    try:
        policy.check(password, [email])
    except policy.WeakPassword as exc:
        raise StaffError(str(exc)) from None


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


def create_user(actor, email: str, role: str, password: str | None) -> StaffUser:
    """Create a staff user; ``actor`` is the operator (or ``"cli"``) doing it.

    Without a password the account has a random one nobody knows: it signs in after
    using a set-password link, or with single sign-on.
    """
    email = normalise_email(email)
    _check_role(role)
    if password is not None:
        check_password_strength(password, email)
    if db.session.scalar(select(StaffUser.id).where(StaffUser.email == email)):
        raise StaffError(f"A staff account for {email} already exists.")
    user = StaffUser(email=email, role=role)
    user.set_password(password if password is not None else secrets.token_urlsafe(32))
    db.session.add(user)
    db.session.flush()
    audit.record(actor, "staff.create", user, email=email, role=role)
    db.session.commit()
    return user


@cache
def _dummy_hash() -> str:
    # Same method and cost as real hashes, so an unknown e-mail takes as long as a known one.
    return generate_password_hash(secrets.token_urlsafe(16))


def throttle_key(email: str) -> tuple[str, str | None]:
    """Return the throttle bucket for a typed e-mail and what the audit log may show of it.

    A valid address is keyed and shown as sign-in normalises it. Anything else is keyed on
    its lower-cased text but never shown: people type their password into the e-mail box.
    """
    try:
        account = normalise_email(email)
    except StaffError:
        return "invalid:" + (email or "").strip().lower()[:255], None
    return account, account[:255]


def authenticate(email: str, password: str, address: str = "") -> StaffUser:
    """Return the user these credentials belong to, or raise SignInRefused / Throttled.

    Unknown and known e-mail addresses cost the same (a dummy hash is checked); every
    failure and every throttle hit is audited, never with the password.
    """
    account, shown = throttle_key(email)
    user = find_by_email(email) if shown else None
    throttle.check_password(account, address, second_factor=bool(user and user.mfa_enrolled))
    if user is None:
        check_password_hash(_dummy_hash(), password or "")
        ok = False
    else:
        ok = user.check_password(password or "")
    if not ok:
        throttle.password_failed(account, address)
        reason = "wrong_password" if user is not None else "unknown_account"
        audit.record(
            "anonymous", "staff.login_failed", user, email=shown, address=address, reason=reason
        )
        db.session.commit()
        raise SignInRefused(WRONG)
    if not user.active:
        audit.record(
            "anonymous",
            "staff.login_failed",
            user,
            email=shown,
            address=address,
            reason="deactivated",
        )
        db.session.commit()
        raise SignInRefused(
            "This account is deactivated. Ask an operator to reactivate it.", status=403
        )
    return user


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
        sessions.end_all(user)
    user.active = active
    audit.record(actor, "staff.activate" if active else "staff.deactivate", user)
    db.session.commit()


def change_role(actor, user: StaffUser, role: str) -> None:
    """Change a staff user's role; it ends their sessions (the next sign-in gets the new role's
    rules, a second factor for operators among them)."""
    _check_role(role)
    if user.role == role:
        return
    if role != "operator":
        _guard_last_operator(user)
    old = user.role
    user.role = role
    sessions.end_all(user)
    audit.record(actor, "staff.change_role", user, old=old, new=role)
    db.session.commit()
