"""Sign-in throttling that the spelling of an e-mail address cannot get around.

Three limits, all counted in the rate-limit store (Redis) with a moving window:

- **per address** (``LOGIN_RATE_LIMIT``, 10 a minute): every sign-in POST from one client
  address, right or wrong, whatever the account (Flask-Limiter on the views);
- **per account** (``LOGIN_ACCOUNT_LIMIT``, 100 failures an hour, ASVS 2.2.1): failed
  passwords for one account, keyed on the address as sign-in normalises it
  (``auth.service.normalise_email``), so ``operator@ｅxample.com`` is the same bucket as
  ``operator@example.com``. For an account **with a second factor**, a full bucket only
  refuses the addresses that have failed on that account within the window: an attacker
  cannot lock the real operator out from elsewhere, and a password alone does not sign
  anyone in there. An account without a second factor is refused from every address;
- **second-factor codes** (``MFA_CODE_LIMIT``, 10 wrong codes per 15 minutes per account):
  only someone who has the password gets this far.

Every refusal is audited, at most once a minute per bucket (a flood of refused requests
must not flood the audit log). A rate-limit store that is down lets sign-ins through
(``RATELIMIT_SWALLOW_ERRORS``'s promise), with a warning in the log.
"""

from __future__ import annotations

import hashlib

from flask import current_app
from limits import RateLimitItem, parse
from limits.strategies import MovingWindowRateLimiter

from whoopadmin import audit
from whoopadmin.extensions import db, limiter


class Throttled(Exception):
    """Too many failures: refuse with a 429 and say when to try again."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many attempts.")
        self.retry_after = retry_after


def _strategy() -> MovingWindowRateLimiter:
    return MovingWindowRateLimiter(limiter.storage)


def _item(setting: str) -> RateLimitItem:
    return parse(str(current_app.config[setting]))


def _ids(*parts: str) -> tuple[str, ...]:
    # Hash the e-mail address: the store's keys name no person.
    prefix = current_app.config.get("RATELIMIT_KEY_PREFIX") or "whoopadmin"
    return (prefix, *(hashlib.sha256(p.encode()).hexdigest()[:32] for p in parts))


def _allowed(item: RateLimitItem, *ids: str) -> bool:
    try:
        return _strategy().test(item, *ids)
    except Exception as exc:  # the store is down: let people in rather than lock all out
        current_app.logger.warning("sign-in throttle unavailable: %s", type(exc).__name__)
        return True


def _hit(item: RateLimitItem, *ids: str) -> None:
    try:
        _strategy().hit(item, *ids)
    except Exception as exc:
        current_app.logger.warning("sign-in throttle unavailable: %s", type(exc).__name__)


def _retry_after(item: RateLimitItem) -> int:
    return max(1, int(item.get_expiry()))


def _audit_once(bucket: str, action: str, **details) -> None:
    """Audit a throttle hit, once a minute per bucket (and always if Redis is down)."""
    from whoopadmin.redisconn import get_redis

    try:
        first = get_redis().set(f"whoopadmin:throttle-audit:{bucket}", 1, nx=True, ex=60)
    except Exception:
        first = True
    if first:
        audit.record("anonymous", action, None, **details)
        db.session.commit()


def check_password(account: str, address: str, second_factor: bool) -> None:
    """Raise Throttled if this address may not try a password for ``account`` now."""
    item = _item("LOGIN_ACCOUNT_LIMIT")
    if _allowed(item, "login-account", *_ids(account)):
        return
    if second_factor and _allowed(_one(item), "login-account-address", *_ids(account, address)):
        return  # a full bucket refuses only the addresses that have failed on this account
    _audit_once(
        "account:" + _ids(account)[1],
        "staff.login_throttled",
        email=account or None,
        address=address,
        limit="account",
    )
    raise Throttled(_retry_after(item))


def _one(item: RateLimitItem) -> RateLimitItem:
    """One per the same window as ``item``: "has this address failed here lately?"."""
    return type(item)(1, item.multiples)


def password_failed(account: str, address: str) -> None:
    """Count a failed password for ``account`` from ``address``."""
    item = _item("LOGIN_ACCOUNT_LIMIT")
    _hit(item, "login-account", *_ids(account))
    _hit(_one(item), "login-account-address", *_ids(account, address))


def check_code(user) -> None:
    """Raise Throttled if ``user``'s second factor has had too many wrong codes."""
    item = _item("MFA_CODE_LIMIT")
    if _allowed(item, "mfa-code", *_ids(str(user.id))):
        return
    _audit_once(f"mfa:{user.id}", "staff.mfa_throttled", email=user.email, limit="code")
    raise Throttled(_retry_after(item))


def code_failed(user) -> None:
    """Count a wrong second-factor code for ``user``."""
    _hit(_item("MFA_CODE_LIMIT"), "mfa-code", *_ids(str(user.id)))


def address_breached(request_limit) -> None:
    """Flask-Limiter's on_breach for the per-address limit: audit it (once a minute)."""
    from flask import request

    address = request.remote_addr or ""
    _audit_once(
        "address:" + _ids(address)[1],
        "staff.login_throttled",
        address=address,
        limit="address",
        path=request.path,
    )
