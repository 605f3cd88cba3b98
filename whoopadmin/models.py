"""Imports every model module, so metadata (and Alembic) see all tables."""

from whoopadmin.api.models import ApiKey
from whoopadmin.audit import AuditEvent
from whoopadmin.auth.models import StaffUser
from whoopadmin.connect.models import ConnectSession, Link, LinkEvent, OAuthState
from whoopadmin.setup.models import Connection

__all__ = [
    "ApiKey",
    "AuditEvent",
    "Connection",
    "ConnectSession",
    "Link",
    "LinkEvent",
    "OAuthState",
    "StaffUser",
]
