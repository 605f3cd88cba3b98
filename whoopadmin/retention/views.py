"""The connection's data retention page (operators): the policy form and the last run."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from whoopadmin.auth.guards import operator_required
from whoopadmin.retention import service
from whoopadmin.retention.forms import RetentionForm
from whoopadmin.setup import service as setup_service
from whoopadmin.setup import steps
from whoopadmin.setup.forms import ActionForm

bp = Blueprint("retention", __name__, url_prefix="/setup")
FIELDS = ("raw_days", "webhook_days", "delivery_days", "erasure_grace_days")
# What the last run's counts are called on the page.
COUNT_LABELS = {
    "raw_objects": "raw WHOOP objects",
    "indicators": "indicators",
    "webhook_events": "webhook events",
    "deliveries": "delivery payloads",
}


@bp.route("/<environment>/retention", methods=["GET", "POST"])
@operator_required
def edit(environment: str):
    """Set the connection's retention periods and grace period; show the last run."""
    connection = setup_service.get_connection(environment)
    if connection is None:
        abort(404, f"There is no connection for the environment {environment!r}.")
    policy = service.policy_for(connection)
    form = RetentionForm(**{name: getattr(policy, name) for name in FIELDS})
    status = 200
    if form.validate_on_submit():
        try:
            service.save_policy(
                current_user, connection, **{name: form[name].data for name in FIELDS}
            )
        except service.PolicyError as exc:
            form[exc.field if exc.field in FIELDS else "raw_days"].errors.append(str(exc))
            status = 400
        else:
            flash("Retention saved.", "success")
            url = url_for("retention.edit", environment=connection.environment)
            return redirect(url, 303)
    elif request.method == "POST":
        status = 400
    row = service.policy_row(connection)
    return (
        render_template(
            "retention/edit.html",
            connection=connection,
            steps=steps.progress(connection),
            current="retention",
            action_form=ActionForm(),
            form=form,
            last_run_at=row.last_run_at if row else None,
            last_run=(row.last_run_counts or {}) if row else {},
            count_labels=COUNT_LABELS,
        ),
        status,
    )
