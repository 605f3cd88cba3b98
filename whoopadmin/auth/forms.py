"""Forms for sign-in and staff management."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from whoopadmin.auth.models import ROLES

ROLE_CHOICES = [SelectChoice(role, role.capitalize()) for role in ROLES]


class LoginForm(FlaskForm):
    """E-mail and password."""

    email = EmailField("E-mail", validators=[DataRequired(), Length(max=255)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    submit = SubmitField("Sign in")


class NewStaffForm(FlaskForm):
    """A new staff account (its owner sets the password through a one-time link)."""

    email = EmailField("E-mail", validators=[DataRequired(), Length(max=255)])
    role = SelectField("Role", choices=ROLE_CHOICES)
    submit = SubmitField("Create account")


class RoleForm(FlaskForm):
    """Change a staff user's role."""

    role = SelectField("Role", choices=ROLE_CHOICES)
    submit = SubmitField("Change role")


class ActionForm(FlaskForm):
    """A button that only carries the CSRF token (activate, deactivate, sign out)."""
