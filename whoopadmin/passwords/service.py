"""Changing a password yourself, and the one-time links operators issue to set one."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, select, update

from whoopadmin import audit
from whoopadmin.audit import utcnow
from whoopadmin.auth import throttle
from whoopadmin.auth.models import StaffUser
from whoopadmin.extensions import db
from whoopadmin.passwords import policy
from whoopadmin.passwords.models import PasswordLink
from whoopadmin.sessions import service as sessions


class PasswordError(ValueError):
    """A password change that cannot be made; the message is shown as is."""


class LinkError(PasswordError):
    """A set-password link that does not work (unknown, used or expired): one message."""


DEAD_LINK = (
    "This set-password link does not work: it is wrong, already used or expired. "
    "Ask an operator for a new one."
)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _local_passwords() -> None:
    if not current_app.config["LOCAL_PASSWORDS"]:
        raise PasswordError("Passwords are turned off here: staff sign in with single sign-on.")


def change_own(
    user: StaffUser, current: str, new: str, keep_session: int | None, address: str
) -> None:
    """Change ``user``'s password after checking the current one; end their other sessions."""
    _local_passwords()
    account = user.email
    throttle.check_password(account, address, second_factor=user.mfa_enrolled)
    if not user.check_password(current or ""):
        throttle.password_failed(account, address)
        audit.record(user, "staff.password_change_failed", user, address=address)
        db.session.commit()
        raise PasswordError("The current password is wrong.")
    try:
        policy.check(new, [user.email])
    except policy.WeakPassword as exc:
        raise PasswordError(str(exc)) from None
    if user.check_password(new):
        raise PasswordError("The new password is the one you have now.")
    user.set_password(new)
    sessions.end_all(user, keep=keep_session)
    audit.record(user, "staff.password_change", user)
    db.session.commit()


def issue_link(actor, user: StaffUser) -> str:
    """Issue a set-password link for ``user`` (earlier unused ones stop working); return its
    token, which is shown once and stored only hashed."""
    _local_passwords()
    if not user.active:
        raise PasswordError("Reactivate the account before issuing a set-password link.")
    db.session.execute(
        delete(PasswordLink).where(PasswordLink.user_id == user.id, PasswordLink.used_at.is_(None))
    )
    token = secrets.token_urlsafe(32)
    hours = int(current_app.config["PASSWORD_LINK_HOURS"])
    link = PasswordLink(
        user_id=user.id,
        token_hash=_hash(token),
        created_by=getattr(actor, "email", None) or str(actor),
        expires_at=utcnow() + timedelta(hours=hours),
    )
    db.session.add(link)
    audit.record(actor, "staff.password_link", user, hours=hours)
    db.session.commit()
    return token


def find_link(token: str) -> PasswordLink:
    """Return the usable link ``token`` names, or raise LinkError."""
    if not token or len(token) > 100:
        raise LinkError(DEAD_LINK)
    link = db.session.scalar(select(PasswordLink).where(PasswordLink.token_hash == _hash(token)))
    if link is None or link.used_at is not None or link.expires_at <= utcnow():
        raise LinkError(DEAD_LINK)
    user = db.session.get(StaffUser, link.user_id)
    if user is None or not user.active:
        raise LinkError(DEAD_LINK)
    return link


def use_link(token: str, password: str) -> StaffUser:
    """Set the password a link is for, once; end every session of that person."""
    _local_passwords()
    link = find_link(token)
    user = db.session.get(StaffUser, link.user_id)
    try:
        policy.check(password, [user.email])
    except policy.WeakPassword as exc:
        raise PasswordError(str(exc)) from None
    # Single use even when two requests race: only one UPDATE finds it unused.
    claimed = db.session.execute(
        update(PasswordLink)
        .where(PasswordLink.id == link.id, PasswordLink.used_at.is_(None))
        .values(used_at=utcnow())
    ).rowcount
    if claimed != 1:
        db.session.rollback()
        raise LinkError(DEAD_LINK)
    user.set_password(password)
    sessions.end_all(user)
    audit.record(user, "staff.password_set", user, link=link.id)
    db.session.commit()
    return user
