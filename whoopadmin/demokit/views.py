"""The demo-only "Publish these records in the demo DNS" button of the wizard's DNS step."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, url_for
from flask_login import current_user

from whoopadmin.auth.guards import operator_required
from whoopadmin.demokit import dnszone, service
from whoopadmin.setup import service as setup
from whoopadmin.setup.forms import ActionForm

bp = Blueprint("demokit", __name__)


@bp.app_context_processor
def demo_context() -> dict:
    """What the DNS step's demo partial needs (the partial is shown in the demo only)."""
    return {"demo_zone": dnszone.ZONE, "demo_in_zone": dnszone.in_zone}


@bp.post("/setup/<environment>/dns/demo-publish")
@operator_required
def publish_dns(environment: str):
    """Publish the connection's records in the demo's DNS server, then check DNS."""
    if not service.enabled():
        abort(404)
    connection = setup.get_connection(environment)
    if connection is None:
        abort(404, f"There is no connection for the environment {environment!r}.")
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        count = service.publish_records(current_user, connection)
    except service.DemoError as exc:
        flash(str(exc), "danger")
    else:
        flash(
            f"Published {count} records for {connection.hostname} in the demo DNS; "
            "checking DNS now.",
            "success",
        )
    return redirect(url_for("setup.show_dns", environment=environment), 303)
