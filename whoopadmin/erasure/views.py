"""The link page's erasure actions (operators only): erase (confirmed), undo."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, url_for
from flask_login import current_user

from whoopadmin.auth.guards import operator_required
from whoopadmin.confirm import confirmation_page, confirmed
from whoopadmin.connect import service as connect_service
from whoopadmin.erasure import service
from whoopadmin.setup.forms import ActionForm

bp = Blueprint("erasure", __name__)


def _link(uid: str):
    link = connect_service.find_link(uid)
    if link is None:
        abort(404, "No such link.")
    return link


@bp.route("/links/<uid>/erase", methods=["GET", "POST"])
@operator_required
def erase(uid: str):
    """Schedule the erasure of a link's data, after a confirmation page."""
    link = _link(uid)
    back = url_for("support.show_link", uid=uid)
    if service.pending_for(link) is not None:
        flash("This member's erasure is already scheduled.", "info")
        return redirect(back, 303)
    days = service.grace_days(link.connection_id)
    if not confirmed():
        when = "at once" if days == 0 else f"in {days} days (undo possible until then)"
        return confirmation_page(
            title=f"Erase {link.reference_id}?",
            consequences=[
                f"Takes effect {when}; meanwhile nothing is synced or delivered for the member.",
                f"Revoke this app's access at WHOOP for WHOOP user {link.whoop_user_id}.",
                "Delete every raw WHOOP object, indicator, sync run, webhook event, delivery, "
                "timeline entry and connect session of the member, and the link itself with "
                "its tokens and personal data.",
                "A receipt (rows removed per kind, no personal data) goes to the audit log "
                "and to your destinations as user.erased.",
            ],
            button="Erase",
            cancel_url=back,
        )
    try:
        erasure = service.request_erasure(current_user, link)
    except service.ErasureError as exc:
        flash(f"Not erased. {exc}", "danger")
        return redirect(back, 303)
    if erasure.status == "done":
        flash(f"Erased ({erasure.public_id}).", "success")
        return redirect(url_for("support.list_links"), 303)
    flash(f"Erasure scheduled for {erasure.due_at:%Y-%m-%d %H:%M} UTC.", "warning")
    return redirect(back, 303)


@bp.post("/links/<uid>/erase/cancel")
@operator_required
def cancel(uid: str):
    """Undo a scheduled erasure."""
    if not ActionForm().validate_on_submit():
        abort(400)
    link = _link(uid)
    erasure = service.pending_for(link)
    try:
        if erasure is None:
            raise service.ErasureError("No erasure is scheduled.", "not_scheduled")
        service.cancel(current_user, erasure)
    except service.ErasureError as exc:
        flash(f"Not undone. {exc}", "danger")
    else:
        flash("Erasure undone: the link is back as it was.", "success")
    return redirect(url_for("support.show_link", uid=uid), 303)
