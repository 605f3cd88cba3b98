"""Support pages: the links list, one link's page with its timeline, actions, the audit log."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup

from whoopadmin.auth.guards import operator_required, staff_required
from whoopadmin.confirm import confirmation_page, confirmed
from whoopadmin.connect import service as connect_service
from whoopadmin.connect.models import Link
from whoopadmin.data.service import running_backfill
from whoopadmin.extensions import db
from whoopadmin.setup import steps
from whoopadmin.setup.forms import ActionForm
from whoopadmin.setup.models import Connection
from whoopadmin.support import auditlog, charts, service, wording

bp = Blueprint("support", __name__)
# Used by every page, admin and support alike: "1 linked member", "2 linked members".
bp.add_app_template_filter(wording.counted, "counted")
bp.add_app_template_global(wording.action_text, "action_text")
bp.add_app_template_global(wording.detail_pairs, "detail_pairs")
bp.add_app_template_filter(wording.every, "every")
bp.add_app_template_global(wording.PERIODIC_PURPOSES, "periodic_purposes")


def _int_arg(name: str) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() and len(value) <= 18 else None


@bp.route("/links")
@staff_required
def list_links():
    """Search and filter links; keyset pagination."""
    filters = service.LinkFilters(
        q=request.args.get("q", ""),
        status=request.args.get("status", ""),
        connection_id=_int_arg("connection"),
        environment=request.args.get("environment", ""),
    ).clean()
    links, next_before = service.list_links(filters, before=_int_arg("before"))
    return render_template(
        "support/links.html",
        links=links,
        filters=filters,
        next_before=next_before,
        counts=service.status_counts(filters),
        statuses=service.STATUSES,
        connections=service.connections_by_id(),
    )


def _link(uid: str) -> Link:
    link = connect_service.find_link(uid)
    if link is None:
        abort(404, "No such link.")
    return link


@bp.route("/links/<uid>")
@staff_required
def show_link(uid: str):
    """Everything about one link, and one timeline of what happened to it."""
    from whoopadmin.sync.service import budget_for

    link = _link(uid)
    connection = db.session.get(Connection, link.connection_id)
    sync = service.sync_summary(link)
    now = service.utcnow()
    freshness = [
        (
            row["type"].replace("_", " "),
            (now - row["newest"]).total_seconds() / 3600 if row["newest"] else None,
        )
        for row in sync
        if row["type"] != "body_measurement"
    ]
    try:
        budget = budget_for(connection).usage()
    except Exception:  # Redis down: the page still shows everything else
        budget = None
    return render_template(
        "support/link.html",
        link=link,
        connection=connection,
        timeline=service.timeline(link),
        sync=sync,
        freshness_chart=charts.freshness_chart(freshness),
        last_webhook=service.last_webhook(link),
        errors=service.error_count(link),
        budget=budget,
        recovery_chart=charts.line_chart(
            service.series(link, "recovery_score"), label="recovery score", unit="%"
        ),
        hrv_chart=charts.line_chart(service.series(link, "hrv_rmssd"), label="HRV", unit="ms"),
        raw=service.raw_records(link),
        action_form=ActionForm(),
        sync_refusal=service.sync_refusal(link),
        backfill=running_backfill(link),
        refresh_outcome=wording.refresh_outcome,
        now=now,
    )


def _act(uid: str):
    if not ActionForm().validate_on_submit():
        abort(400)
    return _link(uid)


def _queue(uid: str, action, done: str, refused: str):
    """Run a queueing action on a link; flash what happened, or why it was refused."""
    link = _act(uid)
    try:
        action(current_user, link)
    except service.ActionRefused as exc:
        flash(f"{refused} {exc}", "danger")
    else:
        flash(done, "success")
    return redirect(url_for("support.show_link", uid=uid), 303)


@bp.post("/links/<uid>/resync")
@staff_required
def resync(uid: str):
    """Re-sync the last 30 days."""
    return _queue(
        uid,
        service.resync,
        "Re-sync queued: the last 30 days are fetched again.",
        "Not re-synced.",
    )


@bp.post("/links/<uid>/refresh")
@staff_required
def refresh(uid: str):
    """Refresh the tokens now."""
    return _queue(
        uid,
        service.refresh_now,
        "Token refresh queued: the timeline shows the result.",
        "Not refreshed.",
    )


@bp.post("/links/<uid>/reconnect")
@staff_required
def reconnect(uid: str):
    """Create a connect link for the same end user; shown once on this page."""
    link = _act(uid)
    try:
        url = service.reconnect_link(current_user, link)
    except connect_service.ConnectError as exc:
        flash(_connect_error(exc, link), "danger")
        return redirect(url_for("support.show_link", uid=uid), 303)
    flash("Reconnect link created (valid 24 hours). Send it to the member.", "success")
    return render_template("support/reconnect.html", link=link, url=url)


def _connect_error(exc: connect_service.ConnectError, link: Link) -> str | Markup:
    """The refusal, with a link to the wizard step that is missing when not live."""
    connection = db.session.get(Connection, link.connection_id)
    step = steps.missing_for_live(connection) if exc.code == "connection_not_live" else None
    if step is None:
        return str(exc)
    url = url_for(step.endpoint, environment=connection.environment)
    return Markup('{} Next step (operators): <a href="{}">{}</a>.').format(
        str(exc), url, step.label
    )


@bp.route("/links/<uid>/disconnect", methods=["GET", "POST"])
@operator_required
def disconnect(uid: str):
    """Revoke at WHOOP and wipe the tokens (operators only), after a confirmation page."""
    link = _link(uid)
    if link.status == "revoked":
        flash("This link is already disconnected.", "info")
        return redirect(url_for("support.show_link", uid=uid), 303)
    if not confirmed():
        return confirmation_page(
            title=f"Disconnect {link.reference_id}?",
            consequences=[
                f"Revoke this app's access at WHOOP for WHOOP user {link.whoop_user_id}.",
                "Wipe the link's tokens here: no more syncs or webhooks for this member.",
                "Mark the link revoked and send a deauth event to your destinations.",
                "Keep the data already stored. To connect again the member needs a new "
                "connect link and must consent again.",
            ],
            button="Disconnect",
            cancel_url=url_for("support.show_link", uid=uid),
        )
    error = connect_service.disconnect(link, current_user)
    if error:
        flash(
            f"Disconnected here (tokens wiped), but WHOOP's revocation failed ({error}): "
            "WHOOP may still list the app for the member.",
            "warning",
        )
    else:
        flash("Disconnected: revoked at WHOOP, tokens wiped.", "success")
    return redirect(url_for("support.show_link", uid=uid), 303)


@bp.route("/audit")
@operator_required
def audit_log():
    """Who did what, when, to what; filter by actor and action."""
    actor = request.args.get("actor", "").strip()[:255]
    action = request.args.get("action", "").strip()[:64]
    events, next_before = auditlog.page(actor, action, _int_arg("before"))
    return render_template(
        "support/audit.html",
        events=events,
        targets=auditlog.targets(events),
        actor=actor,
        action=action,
        next_before=next_before,
    )
