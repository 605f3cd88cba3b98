"""The connection health page (staff): every signal, its causes, missed webhooks, WHOOP calls."""

from __future__ import annotations

from flask import Blueprint, abort, render_template

from whoopadmin.auth.guards import staff_required
from whoopadmin.health import service
from whoopadmin.setup import service as setup_service

bp = Blueprint("health", __name__, url_prefix="/health")


@bp.route("/<environment>")
@staff_required
def show(environment: str):
    """One connection's health in full (the dashboard shows the summary)."""
    connection = setup_service.get_connection(environment)
    if connection is None:
        abort(404, f"There is no connection for the environment {environment!r}.")
    return render_template(
        "health/show.html", connection=connection, health=service.health_page(connection)
    )
