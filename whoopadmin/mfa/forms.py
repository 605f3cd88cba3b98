"""Forms for the second factor."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField
from wtforms.validators import DataRequired


def _code_field(label: str) -> StringField:
    # Length is checked by the service (with a clear message), not here: an overlong
    # paste gets the same answer as any other bad code.
    return StringField(
        label,
        validators=[DataRequired(message="Enter a code.")],
        render_kw={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True},
    )


class VerifyForm(FlaskForm):
    """The sign-in code (or a recovery code)."""

    code = _code_field("Authentication code")
    submit = SubmitField("Verify")


class ConfirmForm(FlaskForm):
    """The first code from a newly added authenticator app."""

    code = _code_field("Code from the app")
    submit = SubmitField("Turn on two-factor sign-in")


class RegenerateForm(FlaskForm):
    """A current code, to replace the recovery codes."""

    code = _code_field("Current code from the app")
    submit = SubmitField("New recovery codes")
