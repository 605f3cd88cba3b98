"""Forms for changing and setting passwords."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length


def _new_password() -> PasswordField:
    return PasswordField(
        "New password",
        validators=[DataRequired(), Length(max=1024)],
        description="At least 12 characters, and not a common password.",
        render_kw={"autocomplete": "new-password"},
    )


def _repeat() -> PasswordField:
    return PasswordField(
        "Repeat the new password",
        validators=[EqualTo("password", message="The passwords differ.")],
        render_kw={"autocomplete": "new-password"},
    )


class ChangePasswordForm(FlaskForm):
    """Your current password and a new one."""

    current = PasswordField(
        "Current password",
        validators=[DataRequired(), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )
    password = _new_password()
    confirm = _repeat()
    submit = SubmitField("Change password")


class SetPasswordForm(FlaskForm):
    """A new password, through a one-time link."""

    password = _new_password()
    confirm = _repeat()
    submit = SubmitField("Set password")
