"""The jobs page (operators) and /metrics (a bearer token, or this machine only)."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    url_for,
)
from flask_login import current_user
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized

from whoopadmin import audit, peers
from whoopadmin.auth.guards import operator_required
from whoopadmin.confirm import confirmation_page, confirmed
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


@bp.route("/jobs/<queue>/<job_id>/delete", methods=["GET", "POST"])
@operator_required
def delete_job(queue: str, job_id: str):
    """Forget a failed job (after a confirmation page)."""
    if not confirmed():
        return confirmation_page(
            title="Delete this failed job?",
            consequences=[
                f"Remove failed job {job_id} from the {queue} queue's failed jobs: it cannot be "
                "retried afterwards, and its error is gone from this page."
            ],
            button="Delete job",
            cancel_url=url_for("ops.jobs"),
        )
    if not service.delete_failed(queue, job_id):
        abort(404, "No such failed job.")
    audit.record(current_user, "job.delete", None, queue=queue, job_id=job_id)
    db.session.commit()
    flash(f"Job {job_id} deleted.", "success")
    return redirect(url_for("ops.jobs"), 303)


@bp.get("/metrics")
@limiter.exempt
def metrics():
    """Prometheus metrics: with WHOOPADMIN_METRICS_TOKEN, for its bearer; else this machine."""
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        matches = peers.bearer_matches(token)
        if matches is None:
            raise Unauthorized(
                "Send the metrics token: Authorization: Bearer <WHOOPADMIN_METRICS_TOKEN>.",
                www_authenticate=WWWAuthenticate("bearer", {"realm": "metrics"}),
            )
        if not matches:
            abort(403, "That is not the metrics token.")
    elif not peers.internal_request(current_app.config["METRICS_ALLOWED"]):
        abort(403, "Metrics are for this machine only (or set WHOOPADMIN_METRICS_TOKEN).")
    return Response(service.metrics_text(), mimetype="text/plain; version=0.0.4")
