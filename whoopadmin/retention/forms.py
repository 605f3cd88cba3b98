"""The connection's data retention form (operators)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField, SubmitField
from wtforms.validators import InputRequired, NumberRange

from whoopadmin.retention.models import MAX_DAYS, MAX_GRACE_DAYS


def _days(label: str, maximum: int, description: str) -> IntegerField:
    return IntegerField(
        label,
        validators=[
            InputRequired("Enter a number of days (0 = keep forever)."),
            NumberRange(0, maximum, f"Enter a whole number of days from 0 to {maximum}."),
        ],
        description=description,
        render_kw={"min": 0, "max": maximum},
    )


class RetentionForm(FlaskForm):
    """How long a connection keeps what (days; 0 = forever), and the erasure grace period."""

    raw_days = _days(
        "Raw WHOOP objects (days)",
        MAX_DAYS,
        "Raw objects and the indicators derived from them, by their own start time. "
        "0 = keep forever.",
    )
    webhook_days = _days(
        "Webhook events (days)",
        MAX_DAYS,
        "Finished webhook events (processed, ignored, failed), by when they arrived. "
        "0 = keep forever.",
    )
    delivery_days = _days(
        "Delivery payloads (days)",
        MAX_DAYS,
        "Finished deliveries (delivered or failed; never pending or held ones), by when they "
        "were created. 0 = keep forever.",
    )
    erasure_grace_days = IntegerField(
        "Erasure grace period (days)",
        validators=[
            InputRequired("Enter a number of days (0 = erase at once)."),
            NumberRange(
                0, MAX_GRACE_DAYS, f"Enter a whole number of days from 0 to {MAX_GRACE_DAYS}."
            ),
        ],
        description="How long an erasure can be undone before it takes effect. 0 = at once.",
        render_kw={"min": 0, "max": MAX_GRACE_DAYS},
    )
    submit = SubmitField("Save retention")
