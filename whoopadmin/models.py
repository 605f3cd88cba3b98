"""Imports every model module, so metadata (and Alembic) see all tables."""

from whoopadmin.api.models import ApiKey
from whoopadmin.audit import AuditEvent
from whoopadmin.auth.models import StaffUser
from whoopadmin.connect.models import ConnectSession, Link, LinkEvent, OAuthState
from whoopadmin.data.models import Backfill
from whoopadmin.destinations.models import Delivery, DeliveryRecovery, Destination
from whoopadmin.erasure.models import Erasure
from whoopadmin.health.models import ConnectionSignal, MissedWebhookCount, WebhookActivity
from whoopadmin.mfa.models import RecoveryCode, TotpDevice
from whoopadmin.passwords.models import PasswordLink
from whoopadmin.retention.models import DataPolicy
from whoopadmin.sessions.models import StaffSession
from whoopadmin.setup.models import Connection
from whoopadmin.sync.models import Indicator, SyncRun, WhoopRecord
from whoopadmin.webhooks.models import WebhookEvent, WebhookRejection

__all__ = [
    "ApiKey",
    "AuditEvent",
    "Backfill",
    "Connection",
    "ConnectionSignal",
    "ConnectSession",
    "DataPolicy",
    "Delivery",
    "DeliveryRecovery",
    "Destination",
    "Erasure",
    "Indicator",
    "Link",
    "LinkEvent",
    "MissedWebhookCount",
    "OAuthState",
    "PasswordLink",
    "RecoveryCode",
    "StaffSession",
    "StaffUser",
    "SyncRun",
    "TotpDevice",
    "WebhookActivity",
    "WebhookEvent",
    "WebhookRejection",
    "WhoopRecord",
]
