"""Dashboard home and health checks."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template
from sqlalchemy import func, select, text

from whoopadmin.auth.guards import staff_required
from whoopadmin.auth.models import StaffUser
from whoopadmin.extensions import db, limiter
from whoopadmin.redisconn import get_redis
from whoopadmin.setup.models import Connection

bp = Blueprint("main", __name__)


@bp.route("/")
@staff_required
def index():
    """The home page: what is set up, and where to go next."""
    from whoopadmin.health.service import connection_health
    from whoopadmin.ops.service import connection_overview, queue_depths

    connections = db.session.scalars(select(Connection).order_by(Connection.environment)).all()
    staff_count = db.session.scalar(
        select(func.count(StaffUser.id)).where(StaffUser.active.is_(True))
    )
    return render_template(
        "main/index.html",
        overviews=[connection_overview(c) | {"health": connection_health(c)} for c in connections],
        depths=queue_depths(),
        staff_count=staff_count,
    )


@bp.route("/healthz")
@limiter.exempt
def healthz():
    """Liveness: the process answers."""
    return jsonify(status="ok")


@bp.route("/readyz")
@limiter.exempt
def readyz():
    """Readiness: the database and Redis answer; 503 names the part that does not."""
    failing: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not ready", never a 500
        db.session.rollback()
        failing["database"] = type(exc).__name__
        current_app.logger.warning("readyz: database unreachable: %s", type(exc).__name__)
    try:
        get_redis().ping()
    except Exception as exc:
        failing["redis"] = type(exc).__name__
        current_app.logger.warning("readyz: redis unreachable: %s", type(exc).__name__)
    if failing:
        return jsonify(status="unavailable", failing=sorted(failing), errors=failing), 503
    return jsonify(status="ok", database="ok", redis="ok")
