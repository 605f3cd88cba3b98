"""Imports every model module, so metadata (and Alembic) see all tables."""

from whoopadmin.audit import AuditEvent
from whoopadmin.auth.models import StaffUser
from whoopadmin.connect.models import Link
from whoopadmin.setup.models import Connection

__all__ = ["AuditEvent", "Connection", "Link", "StaffUser"]
