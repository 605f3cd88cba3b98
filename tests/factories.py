"""Plain functions that create rows for tests (call inside an app context)."""

from __future__ import annotations

from whoopadmin.auth.models import StaffUser
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection

PASSWORDS = {"operator": "operator-password", "support": "support-password"}


def make_user(role: str = "operator", email: str | None = None, **overrides) -> StaffUser:
    """Create a staff user whose password is ``PASSWORDS[role]`` unless given."""
    password = overrides.pop("password", PASSWORDS[role])
    user = StaffUser(email=email or f"{role}@example.com", role=role, **overrides)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


def make_totp(user: StaffUser, secret: str | None = None, confirmed: bool = True) -> str:
    """Give ``user`` an authenticator app (confirmed unless told); return its secret."""
    import pyotp

    from whoopadmin.audit import utcnow
    from whoopadmin.mfa.models import TotpDevice

    secret = secret or pyotp.random_base32()
    device = TotpDevice(user_id=user.id, confirmed_at=utcnow() if confirmed else None)
    device.secret = secret
    db.session.add(device)
    db.session.commit()
    return secret


def make_connection(**overrides) -> Connection:
    """Create a connection with credentials (sealed by the model)."""
    secret = overrides.pop("client_secret", "sk-test-client-secret-3f9a")
    values = {
        "environment": "production",
        "display_name": "Acme Health",
        "client_id": "client-abc",
        "hostname": "whoop.acme.com",
    }
    values.update(overrides)
    connection = Connection(**values)
    connection.client_secret = secret
    db.session.add(connection)
    db.session.commit()
    return connection


def make_link(connection: Connection | None = None, **overrides):
    """Create a link on ``connection`` (default: the first connection)."""
    from sqlalchemy import select

    from whoopadmin.connect.models import Link

    connection = connection or db.session.scalar(select(Connection).order_by(Connection.id))
    values = {"whoop_user_id": 10001, "reference_id": f"user-{overrides.get('whoop_user_id', 1)}"}
    values.update(overrides)
    link = Link(connection_id=connection.id, **values)
    link.access_token = "access-token-value"
    link.refresh_token = "refresh-token-value"
    db.session.add(link)
    db.session.commit()
    return link
