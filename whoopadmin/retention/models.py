"""Per-connection data policy: retention periods, the erasure grace period, the last run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from whoopadmin.extensions import db
from whoopadmin.types import UTCDateTime

# The defaults of a connection without a policy row (README: "Retention and erasure").
DEFAULT_RAW_DAYS = 0  # raw WHOOP objects: kept (0 = forever)
DEFAULT_WEBHOOK_DAYS = 30
DEFAULT_DELIVERY_DAYS = 30
DEFAULT_GRACE_DAYS = 7
MAX_DAYS = 3650
MAX_GRACE_DAYS = 90


class DataPolicy(db.Model):
    """How long a connection keeps what, and what the retention job last removed."""

    __tablename__ = "data_policies"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"), primary_key=True)
    raw_days: Mapped[int] = mapped_column(default=DEFAULT_RAW_DAYS)
    webhook_days: Mapped[int] = mapped_column(default=DEFAULT_WEBHOOK_DAYS)
    delivery_days: Mapped[int] = mapped_column(default=DEFAULT_DELIVERY_DAYS)
    erasure_grace_days: Mapped[int] = mapped_column(default=DEFAULT_GRACE_DAYS)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # {"raw_objects": n, "indicators": n, "webhook_events": n, "deliveries": n, "complete": bool}
    last_run_counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
