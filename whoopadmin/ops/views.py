"""The jobs page (operators) and /metrics (internal addresses only)."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from whoopadmin import audit
from whoopadmin.auth.guards import operator_required
from whoopadmin.extensions import db, limiter
from whoopadmin.ops import service
from whoopadmin.setup.forms import ActionForm

bp = Blueprint("ops", __name__)


@bp.route("/jobs")
@operator_required
def jobs():
    """Queues, failed jobs, and the cron schedule."""
    return render_template(
        "ops/jobs.html",
        depths=service.queue_depths(),
        failed=service.failed_jobs() if service.queue_depths() is not None else [],
        schedule=service.cron_schedule(),
        action_form=ActionForm(),
    )


@bp.post("/jobs/<queue>/<job_id>/retry")
@operator_required
def retry_job(queue: str, job_id: str):
    """Put a failed job back on its queue."""
    if not ActionForm().validate_on_submit():
        abort(400)
    if not service.retry_failed(queue, job_id):
        abort(404, "No such failed job.")
    audit.record(current_user, "job.retry", None, queue=queue, job_id=job_id)
    db.session.commit()
    flash(f"Job {job_id} queued again on {queue}.", "success")
    return redirect(url_for("ops.jobs"), 303)


@bp.post("/jobs/<queue>/<job_id>/delete")
@operator_required
def delete_job(queue: str, job_id: str):
    """Forget a failed job."""
    if not ActionForm().validate_on_submit():
        abort(400)
    if not service.delete_failed(queue, job_id):
        abort(404, "No such failed job.")
    audit.record(current_user, "job.delete", None, queue=queue, job_id=job_id)
    db.session.commit()
    flash(f"Job {job_id} deleted.", "success")
    return redirect(url_for("ops.jobs"), 303)


@bp.get("/metrics")
@limiter.exempt
def metrics():
    """Prometheus metrics; only for the addresses allowed to ask (like the TLS endpoint)."""
    allowed = {a.strip() for a in str(current_app.config["METRICS_ALLOWED"]).split(",")}
    if request.remote_addr not in allowed:
        abort(403, "Metrics are for internal addresses only.")
    return Response(service.metrics_text(), mimetype="text/plain; version=0.0.4")
