"""Wizard forms. Field checks here are about shape; the service decides the rest."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from whoopadmin.connect.policy import POLICIES


def checkbox(form, field) -> None:
    """A checkbox sends its value once, or nothing: anything else is a forged form."""
    if len(field.raw_data) > 1 or (field.raw_data and field.raw_data[0] not in ("y", "on")):
        raise ValidationError("Tick the box or leave it empty.")


class NewConnectionForm(FlaskForm):
    """Environment and display name of a new connection."""

    environment = StringField(
        "Environment",
        validators=[DataRequired(), Length(max=64)],
        description="production, staging, development, or a name you pick.",
    )
    display_name = StringField(
        "Display name",
        validators=[DataRequired(), Length(max=255)],
        description="Shown to your users on the connect page, e.g. your app's name.",
    )
    submit = SubmitField("Create connection")


class CredentialsForm(FlaskForm):
    """WHOOP credentials; blank secrets keep the stored ones."""

    client_id = StringField("Client id", validators=[DataRequired(), Length(max=300)])
    client_secret = PasswordField("Client secret", validators=[Optional(), Length(max=300)])
    partner_client_id = StringField(
        "Partner API client id (optional)", validators=[Optional(), Length(max=300)]
    )
    partner_client_secret = PasswordField(
        "Partner API client secret (optional)", validators=[Optional(), Length(max=300)]
    )
    webhook_signing_secret = PasswordField(
        "Partner webhook signing secret (optional)", validators=[Optional(), Length(max=300)]
    )
    submit = SubmitField("Save credentials")


class SubdomainForm(FlaskForm):
    """The subdomain the connection's public pages will live on."""

    hostname = StringField(
        "Subdomain",
        validators=[DataRequired(), Length(max=300)],
        description="A name in a domain you control, e.g. whoop.acme.com.",
    )
    submit = SubmitField("Save subdomain")


class IssuerRecordForm(FlaskForm):
    """A validation record supplied by another certificate issuer."""

    name = StringField("Name", validators=[DataRequired(), Length(max=300)])
    type = SelectField("Type", choices=[SelectChoice("CNAME"), SelectChoice("TXT")])
    value = StringField("Value", validators=[DataRequired(), Length(max=2100)])
    submit = SubmitField("Use this validation record")


class SettingsForm(FlaskForm):
    """Connection settings outside the wizard's steps."""

    display_name = StringField("Display name", validators=[DataRequired(), Length(max=255)])
    allowed_origins = TextAreaField(
        "Allowed redirect origins",
        validators=[Length(max=5000)],
        description="One per line, e.g. https://app.acme.com. Connect links may send users "
        "back only to these origins.",
    )
    app_schemes = TextAreaField(
        "Mobile app schemes",
        validators=[Length(max=2000)],
        description="One per line, e.g. acmehealth (for acmehealth://...).",
    )
    rate_limit_per_minute = IntegerField(
        "WHOOP requests per minute", validators=[InputRequired(), NumberRange(1, 100_000)]
    )
    rate_limit_per_day = IntegerField(
        "WHOOP requests per day", validators=[InputRequired(), NumberRange(1, 100_000_000)]
    )
    backfill_days = IntegerField(
        "Days to backfill on connect", validators=[Optional(), NumberRange(1, 365)]
    )
    approved_by_whoop = BooleanField("WHOOP has approved this app (no 10-member cap)")
    member_cap = IntegerField(
        "Member cap",
        validators=[Optional(), NumberRange(1, 10_000_000)],
        description="How many members WHOOP lets this app link. Empty: WHOOP's default, 10 "
        "until it approves the app and no cap after. At the cap new connect sessions are "
        "refused.",
    )
    reference_id_policy = SelectField(
        "When a member connects under a new reference id",
        choices=[SelectChoice(value, label) for value, label in POLICIES],
        description="A WHOOP member already linked under one of your reference ids who "
        "completes a connect link made for another reference id.",
    )
    pkce_off = BooleanField(
        "Compatibility: turn PKCE off",
        validators=[checkbox],
        description="Leave this unticked. PKCE (S256) keeps a stolen authorization code "
        "useless; turn it off only if WHOOP refuses sign-ins that carry it.",
    )
    submit = SubmitField("Save settings")


def _language_choices() -> list[SelectChoice]:
    from whoopadmin.i18n import language_names

    return [SelectChoice("", "Chosen by the member's browser")] + [
        SelectChoice(code, name) for code, name in language_names()
    ]


class ConnectLinkForm(FlaskForm):
    """A connect link for one of the operator's users."""

    reference_id = StringField(
        "Reference id",
        validators=[DataRequired(), Length(max=255)],
        description="Your own id for this user; it comes back with the result.",
    )
    success_redirect_url = StringField(
        "Success redirect URL (optional)", validators=[Optional(), Length(max=2048)]
    )
    failure_redirect_url = StringField(
        "Failure redirect URL (optional)", validators=[Optional(), Length(max=2048)]
    )
    language = SelectField(
        "Language of the connect page",
        choices=_language_choices,
        default="",
        # The service checks the value (and names the languages there are).
        validate_choice=False,
        validators=[Length(max=16)],
        description="Without one, the member's browser chooses (English if it asks for "
        "none of these).",
    )
    expires_in = IntegerField(
        "Valid for (minutes)", default=15, validators=[InputRequired(), NumberRange(1, 10080)]
    )
    submit = SubmitField("Create connect link")


class ActionForm(FlaskForm):
    """A button that carries only the CSRF token."""
