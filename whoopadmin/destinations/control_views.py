"""Destination controls (operators only): payload mode, the secret overlap, enable/disable,
recovery. Each is its own small form and route on the destinations blueprint, so the
destination form in ``views.py`` stays as it is."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, SelectField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired

from whoopadmin.auth.guards import operator_required
from whoopadmin.destinations import controls, recovery, service
from whoopadmin.destinations.models import Destination
from whoopadmin.destinations.views import _check_action_form, _destination, bp
from whoopadmin.extensions import db
from whoopadmin.setup.forms import ActionForm
from whoopadmin.setup.models import Connection


class ModeForm(FlaskForm):
    """Full events or pings (ids only)."""

    mode = SelectField(
        "Payload",
        choices=[
            SelectChoice("full", "Full events (with the health data)"),
            SelectChoice("ping", "Pings: ids only, your backend reads the data through the API"),
        ],
    )
    submit = SubmitField("Save payload mode")


class _TimeField(DateTimeLocalField):
    """A date-time input whose parse error says what to type."""

    def process_formdata(self, valuelist):
        try:
            super().process_formdata([v[:40] for v in valuelist])
        except ValueError:
            raise ValueError("Enter a date and time like 2026-05-01T07:30 (UTC).") from None


class RecoveryForm(FlaskForm):
    """The time (UTC) from which failed and held deliveries are sent again."""

    since = _TimeField(
        "Re-send everything that failed since (UTC)",
        format=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        validators=[InputRequired(message="Enter the date and time (UTC) to recover from.")],
    )
    submit = SubmitField("Start recovery")


@bp.context_processor
def _controls_context():
    """``destination_controls(d)`` for the destination templates (forms and state)."""

    def destination_controls(destination: Destination) -> dict:
        return {
            "mode_form": ModeForm(mode=destination.payload_mode or "full"),
            "held": controls.held_count(destination.id),
            "running": recovery.running(destination.id),
            "overlap_until": service.overlap_until(destination),
            "disable_after_days": service.setting("DESTINATION_DISABLE_AFTER_DAYS"),
        }

    return {"destination_controls": destination_controls}


def _back(destination: Destination, category: str, message: str):
    flash(message, category)
    return redirect(url_for("destinations.edit_destination", destination_id=destination.id), 303)


@bp.post("/<int:destination_id>/mode")
@operator_required
def set_mode(destination_id: int):
    """Choose full events or pings for this destination."""
    destination = _destination(destination_id)
    form = ModeForm()
    if not form.validate_on_submit():
        if "csrf_token" in form.errors:
            abort(400)
        return _back(destination, "danger", "Choose full events or pings.")
    try:
        changed = controls.set_mode(current_user, destination, form.mode.data)
    except service.DestinationError as exc:
        return _back(destination, "danger", str(exc))
    return _back(
        destination,
        "success",
        f"New events are sent as {'pings' if form.mode.data == 'ping' else 'full events'}."
        if changed
        else "Nothing changed.",
    )


def _act(destination_id: int, action, done: str):
    """Run a one-button control (CSRF checked); flash its refusal or ``done``."""
    destination = _destination(destination_id)
    _check_action_form()
    try:
        action(current_user, destination)
    except service.DestinationError as exc:
        return _back(destination, "warning", str(exc))
    return _back(destination, "success", done)


@bp.post("/<int:destination_id>/overlap/end")
@operator_required
def end_overlap(destination_id: int):
    """Stop the previous signing secret now."""
    return _act(
        destination_id, controls.end_overlap, "Overlap ended: only the new signing secret signs."
    )


@bp.post("/<int:destination_id>/disable")
@operator_required
def disable_destination(destination_id: int):
    """Hold this destination's deliveries until it is enabled."""
    return _act(
        destination_id, controls.disable, "Destination disabled: its events are held, not sent."
    )


@bp.post("/<int:destination_id>/enable")
@operator_required
def enable_destination(destination_id: int):
    """Deliver again, and offer to recover what was held or failed meanwhile."""
    destination = _destination(destination_id)
    _check_action_form()
    try:
        offer = controls.enable(current_user, destination)
    except service.DestinationError as exc:
        return _back(destination, "warning", str(exc))
    flash("Destination enabled. Recover what it missed below.", "success")
    args = {k: v.strftime("%Y-%m-%dT%H:%M:%S") for k, v in offer.items() if v is not None}
    return redirect(url_for("destinations.recover", destination_id=destination.id, **args), 303)


def _suggestion(name: str):
    """A start time offered in the query string (after enabling), or None if it is junk."""
    text = request.args.get(name, "")[:32]
    try:
        value = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return recovery.clamp(value)


@bp.route("/<int:destination_id>/recovery", methods=["GET", "POST"])
@operator_required
def recover(destination_id: int):
    """Start a recovery, follow its progress, cancel it; the latest recoveries."""
    destination = _destination(destination_id)
    form = RecoveryForm()
    offers = {
        "since it was disabled": _suggestion("disabled_at"),
        "since its failures began": _suggestion("failing_since"),
    }
    offers = {label: value for label, value in offers.items() if value is not None}
    if request.method == "GET" and form.since.data is None:
        first = next(iter(offers.values()), None) or recovery.clamp(destination.failing_since)
        if first is not None:
            form.since.data = first.replace(tzinfo=None, second=0, microsecond=0)
    if form.validate_on_submit():
        try:
            started = recovery.start(current_user, destination, form.since.data)
        except service.DestinationError as exc:
            db.session.rollback()
            form.since.errors.append(str(exc))
        else:
            flash(f"Recovery started: {started.total} to go through, oldest first.", "info")
            return redirect(url_for("destinations.recover", destination_id=destination.id), 303)
    running = recovery.running(destination.id)
    page = render_template(
        "destinations/recovery.html",
        destination=destination,
        connection=db.session.get(Connection, destination.connection_id),
        form=form,
        offers=offers,
        running=running,
        recoveries=recovery.history(destination.id),
        earliest=recovery.earliest(),
        held=controls.held_count(destination.id),
        action_form=ActionForm(),
    )
    status = 400 if request.method == "POST" else 200
    # While it runs the page reloads itself, so the progress moves without JavaScript.
    return page, status, ({"Refresh": "5"} if running is not None and status == 200 else {})


@bp.post("/<int:destination_id>/recovery/cancel")
@operator_required
def cancel_recovery(destination_id: int):
    """Cancel the running recovery (it stops before its next send)."""
    destination = _destination(destination_id)
    _check_action_form()
    try:
        recovery.cancel(current_user, destination)
    except service.DestinationError as exc:
        flash(str(exc), "warning")
    else:
        flash("Recovery cancelled.", "success")
    return redirect(url_for("destinations.recover", destination_id=destination.id), 303)
