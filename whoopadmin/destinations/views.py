"""Destination pages (operators only): configure, rotate the secret, test, delivery log."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, SelectMultipleField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from whoopadmin.auth.guards import operator_required
from whoopadmin.confirm import confirmation_page, confirmed
from whoopadmin.destinations import service
from whoopadmin.destinations.models import (
    DATA_EVENTS,
    EVENT_TYPES,
    LIFECYCLE_EVENTS,
    Delivery,
    Destination,
)
from whoopadmin.extensions import db
from whoopadmin.setup.forms import ActionForm
from whoopadmin.setup.models import Connection

bp = Blueprint("destinations", __name__, url_prefix="/destinations")

# Pages that show a secret must not be kept by a browser or a proxy.
NO_STORE = {"Cache-Control": "no-store"}


def _url_field() -> StringField:
    return StringField(
        "Destination URL",
        validators=[DataRequired(), Length(max=2048)],
        description="Where events are posted, e.g. https://api.acme.com/whoop/events.",
    )


# What each lifecycle event means, beside its code on the form's checkboxes.
EVENT_MEANINGS = {
    "auth.success": "a member connected",
    "auth.error": "a connect failed",
    "user_reauth": "a member reconnected",
    "deauth": "a link was disconnected",
    "access_revoked": "WHOOP refused a link's tokens",
    "connection_error": "a link's token refreshes keep failing",
    "rate_limit_hit": "WHOOP's rate limit was reached",
    "historical.completed": "a backfill finished",
    "historical.failed": "a backfill gave up",
}


def _event_choice(event: str, group: str) -> SelectChoice:
    meaning = EVENT_MEANINGS.get(event)
    return SelectChoice(event, f"{event} ({meaning})" if meaning else event, optgroup=group)


def _events_field() -> SelectMultipleField:
    # Rendered as checkboxes grouped by optgroup (templates/_forms.html).
    return SelectMultipleField(
        "Events",
        choices=[_event_choice(e, "Lifecycle") for e in LIFECYCLE_EVENTS]
        + [_event_choice(e, "Data (normalised indicators)") for e in DATA_EVENTS],
        validators=[DataRequired(message="Choose at least one event type.")],
        description="Tick each kind of event this destination should receive.",
    )


class DestinationForm(FlaskForm):
    """A destination's URL, event filter and active flag (the secret is generated)."""

    url = _url_field()
    events = _events_field()
    active = BooleanField("Active (deliver events now)", default=True)
    submit = SubmitField("Save destination")


class NewDestinationForm(FlaskForm):
    """A new destination for a chosen connection."""

    connection_id = SelectField("Connection", coerce=int)
    url = _url_field()
    events = _events_field()
    active = BooleanField("Active (deliver events now)", default=True)
    submit = SubmitField("Create destination")


def _destination(destination_id: int) -> Destination:
    destination = service.get_destination(destination_id)
    if destination is None:
        abort(404, "There is no such destination.")
    return destination


def _check_action_form() -> None:
    if not ActionForm().validate_on_submit():
        abort(400)


def _connections() -> dict[int, Connection]:
    return {c.id: c for c in db.session.scalars(db.select(Connection).order_by(Connection.id))}


@bp.route("")
@operator_required
def list_destinations():
    """Every destination of every connection."""
    return render_template(
        "destinations/list.html",
        destinations=service.list_destinations(),
        connections=_connections(),
    )


@bp.route("/new", methods=["GET", "POST"])
@operator_required
def new_destination():
    """Create a destination; its signing secret is shown once, on the next page."""
    connections = _connections()
    form = NewDestinationForm()
    form.connection_id.choices = [SelectChoice(c.id, c.environment) for c in connections.values()]
    if request.method == "GET":
        form.events.data = list(EVENT_TYPES)
    if not connections:
        flash("Create a connection first: destinations belong to a connection.", "info")
    elif form.validate_on_submit():
        try:
            destination, secret = service.create_destination(
                current_user,
                connections[form.connection_id.data],
                form.url.data,
                form.events.data,
                form.active.data,
            )
        except service.DestinationError as exc:
            form[exc.field or "url"].errors.append(str(exc))
        else:
            return _show_secret(destination, secret, created=True)
    status = 400 if request.method == "POST" else 200
    return render_template("destinations/new.html", form=form), status


def _show_secret(destination: Destination, secret: str, created: bool):
    page = render_template(
        "destinations/secret.html",
        destination=destination,
        connection=db.session.get(Connection, destination.connection_id),
        secret=secret,
        created=created,
    )
    return page, 200, NO_STORE


@bp.route("/<int:destination_id>", methods=["GET", "POST"])
@operator_required
def edit_destination(destination_id: int):
    """Edit a destination and see its delivery log."""
    destination = _destination(destination_id)
    form = DestinationForm(
        url=destination.url, events=list(destination.events or []), active=destination.active
    )
    if form.validate_on_submit():
        try:
            changed = service.update_destination(
                current_user, destination, form.url.data, form.events.data, form.active.data
            )
        except service.DestinationError as exc:
            db.session.rollback()
            form[exc.field or "url"].errors.append(str(exc))
        else:
            flash("Destination saved." if changed else "Nothing changed.", "success")
            return redirect(
                url_for("destinations.edit_destination", destination_id=destination.id), 303
            )
    status = 400 if request.method == "POST" else 200
    return (
        render_template(
            "destinations/edit.html",
            destination=destination,
            connection=db.session.get(Connection, destination.connection_id),
            form=form,
            action_form=ActionForm(),
            deliveries=service.recent_deliveries(destination),
        ),
        status,
    )


@bp.route("/<int:destination_id>/rotate", methods=["GET", "POST"])
@operator_required
def rotate_secret(destination_id: int):
    """Replace the signing secret and show the new one, once (after a confirmation page)."""
    destination = _destination(destination_id)
    if not confirmed():
        return confirmation_page(
            title="Rotate this destination's signing secret?",
            consequences=[
                f"Generate a new signing secret for {destination.url} and show it once.",
                "Sign every delivery from now on with the new secret only: the old one stops "
                "signing at once, so your backend must switch to the new secret.",
            ],
            button="Rotate signing secret",
            cancel_url=url_for("destinations.edit_destination", destination_id=destination.id),
            danger=False,
        )
    secret = service.rotate_secret(current_user, destination)
    return _show_secret(destination, secret, created=False)


@bp.route("/<int:destination_id>/delete", methods=["GET", "POST"])
@operator_required
def delete_destination(destination_id: int):
    """Delete a destination and its delivery log (after a confirmation page)."""
    destination = _destination(destination_id)
    if not confirmed():
        return confirmation_page(
            title="Delete this destination?",
            consequences=[
                f"Stop delivering events to {destination.url}.",
                "Delete the destination, its signing secret and its whole delivery log "
                "(pending deliveries are never sent).",
                "This cannot be undone.",
            ],
            button="Delete destination",
            cancel_url=url_for("destinations.edit_destination", destination_id=destination.id),
        )
    url = destination.url
    service.delete_destination(current_user, destination)
    flash(f"Destination {url} deleted.", "success")
    return redirect(url_for("destinations.list_destinations"), 303)


@bp.post("/<int:destination_id>/test")
@operator_required
def send_test(destination_id: int):
    """Queue a signed test event to this destination."""
    destination = _destination(destination_id)
    _check_action_form()
    service.send_test(current_user, destination)
    flash("Test event queued; the delivery log below shows the result.", "info")
    return redirect(url_for("destinations.edit_destination", destination_id=destination.id), 303)


def _delivery(delivery_id: int) -> Delivery:
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None:
        abort(404, "There is no such delivery.")
    return delivery


@bp.get("/deliveries/<int:delivery_id>")
@operator_required
def show_delivery(delivery_id: int):
    """One delivery: its body and every attempt."""
    delivery = _delivery(delivery_id)
    return render_template(
        "destinations/delivery.html",
        delivery=delivery,
        destination=db.session.get(Destination, delivery.destination_id),
        action_form=ActionForm(),
    )


@bp.post("/deliveries/<int:delivery_id>/resend")
@operator_required
def resend_delivery(delivery_id: int):
    """Send a delivered or failed event again."""
    delivery = _delivery(delivery_id)
    _check_action_form()
    try:
        copy = service.resend(current_user, delivery)
    except service.DestinationError as exc:
        abort(409, str(exc))
    flash(f"Re-sending {delivery.event_type} as delivery #{copy.id}.", "info")
    return redirect(
        url_for("destinations.edit_destination", destination_id=delivery.destination_id), 303
    )


# The controls' routes (mode, overlap, enable/disable, recovery) live beside, on this bp.
from whoopadmin.destinations import control_views  # noqa: E402, F401
