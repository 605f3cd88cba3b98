"""Enrol an authenticator app, check codes (each works once), recovery codes, resets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
import unicodedata

import pyotp
from flask import current_app
from sqlalchemy import delete, func, select, update

from whoopadmin import audit
from whoopadmin.audit import utcnow
from whoopadmin.auth import throttle
from whoopadmin.extensions import db
from whoopadmin.mfa.models import RecoveryCode, TotpDevice
from whoopadmin.sessions import service as sessions
from whoopadmin.sessions.models import StaffSession

RECOVERY_CODES = 10
RECOVERY_RE = re.compile(r"^[a-z2-7]{16}$")
TOTP_RE = re.compile(r"^[0-9]{6}$")


class MfaError(ValueError):
    """A second-factor step that did not work; the message is shown as is."""


BAD_FORMAT = "Enter the 6-digit code from your authenticator app, or one of your recovery codes."
WRONG_CODE = "That code is not right, or it has been used already. Try the next one."


def clean_code(text: str) -> str:
    """Return a typed code without spaces or dashes, in ASCII, or raise MfaError.

    Full-width digits become ASCII (NFKC); other scripts' digits are refused rather than
    read as numbers (Python's ``isdigit`` would take them).
    """
    text = text or ""
    if len(text) > 64:
        raise MfaError(BAD_FORMAT)
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"[\s\-]+", "", text).lower()
    if not (TOTP_RE.match(text) or RECOVERY_RE.match(text)):
        raise MfaError(BAD_FORMAT)
    return text


def required_for(user) -> bool:
    """Return whether ``user`` must sign in with a second factor (operators, by default)."""
    return bool(current_app.config["REQUIRE_MFA"]) and user.role == "operator"


def _device(user, confirmed: bool) -> TotpDevice | None:
    device = db.session.scalar(select(TotpDevice).where(TotpDevice.user_id == user.id))
    if device is None or (device.confirmed_at is not None) != confirmed:
        return None
    return device


def provisioning_uri(user, secret: str) -> str:
    """Return the otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(
        name=user.email, issuer_name=current_app.config["MFA_ISSUER"]
    )


def begin_enrolment(user) -> str:
    """Start (or restart) enrolment with a fresh secret; return it to show once."""
    if user.mfa_enrolled:
        raise MfaError("Two-factor sign-in is already set up for this account.")
    db.session.execute(delete(TotpDevice).where(TotpDevice.user_id == user.id))
    secret = pyotp.random_base32()  # 160 bits, as RFC 4226 recommends
    device = TotpDevice(user_id=user.id)
    device.secret = secret
    db.session.add(device)
    db.session.commit()
    return secret


def _step_of(device: TotpDevice, code: str) -> int | None:
    """The time step (previous, current or next) whose code is ``code``, if any."""
    totp = pyotp.TOTP(device.secret)
    current = int(time.time()) // totp.interval
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _accept_totp(device: TotpDevice, code: str) -> bool:
    """Accept ``code`` once: only a step later than the last accepted one counts."""
    step = _step_of(device, code)
    if step is None:
        return False
    claimed = db.session.execute(
        update(TotpDevice)
        .where(TotpDevice.id == device.id)
        .where((TotpDevice.last_step.is_(None)) | (TotpDevice.last_step < step))
        .values(last_step=step)
    ).rowcount
    return claimed == 1


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _new_recovery_codes(user) -> list[str]:
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [
        base64.b32encode(secrets.token_bytes(10)).decode().lower() for _ in range(RECOVERY_CODES)
    ]
    for code in codes:
        db.session.add(RecoveryCode(user_id=user.id, code_hash=_hash(code)))
    return ["-".join(code[i : i + 4] for i in range(0, 16, 4)) for code in codes]


def confirm_enrolment(user, text: str, session_id: int | None) -> list[str]:
    """Confirm enrolment with a first code; return the recovery codes (shown once).

    The person's other sessions end (they were opened without the second factor), and the
    current one counts as signed in with it.
    """
    code = clean_code(text)
    device = _device(user, confirmed=False)
    if device is None:
        raise MfaError("Start again: this set-up page has been replaced or has expired.")
    if not TOTP_RE.match(code) or not _accept_totp(device, code):
        db.session.rollback()
        raise MfaError(
            "That code does not match. Check the time on your phone, and that you scanned "
            "the code on this page (each visit shows a new one)."
        )
    device.confirmed_at = utcnow()
    codes = _new_recovery_codes(user)
    sessions.end_all(user, keep=session_id)
    if session_id is not None:
        db.session.execute(
            update(StaffSession).where(StaffSession.id == session_id).values(second_factor="totp")
        )
    audit.record(user, "staff.mfa_enrol", user)
    db.session.commit()
    return codes


def verify(user, text: str) -> str:
    """Check a sign-in code: return "totp" or "recovery", or raise MfaError / Throttled."""
    throttle.check_code(user)
    device = _device(user, confirmed=True)
    try:
        code = clean_code(text)
    except MfaError:
        code = None
    used = None
    if code is not None and device is not None:
        if TOTP_RE.match(code):
            used = "totp" if _accept_totp(device, code) else None
        elif _use_recovery(user, code):
            used = "recovery"
    if used is None:
        db.session.rollback()
        throttle.code_failed(user)
        audit.record("anonymous", "staff.mfa_failed", user, email=user.email)
        db.session.commit()
        raise MfaError(WRONG_CODE if code is not None else BAD_FORMAT)
    if used == "recovery":
        audit.record(user, "staff.mfa_recovery_used", user, left=recovery_codes_left(user))
    db.session.commit()
    return used


def _use_recovery(user, code: str) -> bool:
    # Single use even when two requests race: only one UPDATE finds it unused.
    return (
        db.session.execute(
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == _hash(code),
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=utcnow())
        ).rowcount
        == 1
    )


def recovery_codes_left(user) -> int:
    """Return how many unused recovery codes ``user`` has."""
    return db.session.scalar(
        select(func.count(RecoveryCode.id)).where(
            RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
        )
    )


def regenerate_recovery_codes(user, text: str) -> list[str]:
    """Replace ``user``'s recovery codes after a current authenticator code; return them."""
    throttle.check_code(user)
    device = _device(user, confirmed=True)
    code = clean_code(text)
    if device is None or not TOTP_RE.match(code) or not _accept_totp(device, code):
        db.session.rollback()
        throttle.code_failed(user)
        raise MfaError("Enter a current code from your authenticator app.")
    codes = _new_recovery_codes(user)
    audit.record(user, "staff.mfa_recovery_codes", user)
    db.session.commit()
    return codes


def reset(actor, user) -> None:
    """Remove ``user``'s second factor (an operator's action): they enrol again, and every
    session of theirs ends."""
    db.session.execute(delete(TotpDevice).where(TotpDevice.user_id == user.id))
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    sessions.end_all(user)
    audit.record(actor, "staff.mfa_reset", user)
    db.session.commit()
