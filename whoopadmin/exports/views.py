"""The support page's export (staff: support and operators, like the page's other reads)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_login import current_user

from whoopadmin.auth.guards import staff_required
from whoopadmin.connect import service as connect_service
from whoopadmin.exports import service
from whoopadmin.exports.api import download
from whoopadmin.setup.forms import ActionForm

bp = Blueprint("exports", __name__)


@bp.post("/links/<uid>/export")
@staff_required
def export(uid: str):
    """Download the link's data in the format chosen on its page (audit-logged)."""
    if not ActionForm().validate_on_submit():
        abort(400)
    link = connect_service.find_link(uid)
    if link is None:
        abort(404, "No such link.")
    try:
        subject, fmt = service.begin(current_user, link, request.form.get("format"))
    except service.ExportError as exc:
        flash(f"Not exported. {exc}", "danger")
        return redirect(url_for("support.show_link", uid=uid), 303)
    return download(subject, fmt)
