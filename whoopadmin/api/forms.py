"""The new-API-key form: name, connections (all or some), permissions, expiry."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, RadioField, SelectMultipleField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional
from wtforms.widgets import CheckboxInput, ListWidget

from whoopadmin.api.models import PERMISSIONS

PERMISSION_LABELS = {
    "connect": "connect — create connect links (POST /connect-sessions)",
    "read": "read — read users, their status and data (GET /users…)",
    "write": "write — disconnect and backfill users (DELETE /users/…, POST …/backfill)",
}


class CheckboxesField(SelectMultipleField):
    """A multiple choice shown as checkboxes (no hold-Ctrl multi-select)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ApiKeyForm(FlaskForm):
    """A new key. The service checks the rules; the form only parses."""

    name = StringField("Name")
    scope = RadioField(
        "Connections",
        choices=[
            SelectChoice("all", "All connections, including ones created later"),
            SelectChoice("selected", "Only the connections ticked below"),
        ],
        default="all",
    )
    connections = CheckboxesField("Connections", coerce=int, choices=[])
    permissions = CheckboxesField(
        "Permissions",
        choices=[SelectChoice(p, PERMISSION_LABELS[p]) for p in PERMISSIONS],
        default=list(PERMISSIONS),
    )
    expires_on = DateField(
        "Expires after (optional)",
        validators=[Optional()],
        description="The key stops working at the end of this day (UTC). Blank: never.",
    )
    submit = SubmitField("Create key")

    def field_errors(self) -> dict[str, list[str]]:
        """Each field's errors in words people can act on."""
        messages = {
            "scope": "Choose all connections or only some.",
            "connections": "Choose connections from the list.",
            "permissions": "Choose permissions from the list.",
            "expires_on": "Give the expiry as a date (YYYY-MM-DD), or leave it blank.",
        }
        return {
            name: [messages.get(name, error) for error in errors][:1]
            for name, errors in self.errors.items()
        }
