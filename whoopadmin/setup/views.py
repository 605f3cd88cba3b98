"""The setup wizard pages (operators only) and the TLS server's permission endpoint."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_limiter.errors import RateLimitExceeded
from flask_login import current_user

from whoopadmin import peers
from whoopadmin.auth.guards import operator_required
from whoopadmin.errors import render_error
from whoopadmin.extensions import csrf, limiter
from whoopadmin.health import member_cap
from whoopadmin.setup import service, steps
from whoopadmin.setup.forms import (
    ActionForm,
    ConnectLinkForm,
    CredentialsForm,
    IssuerRecordForm,
    NewConnectionForm,
    SettingsForm,
    SubdomainForm,
)
from whoopadmin.setup.models import Connection
from whoopadmin.support.wording import counted
from whoopadmin.webhooks.service import last_test_event, test_event_result

bp = Blueprint("setup", __name__, url_prefix="/setup")
internal = Blueprint("internal", __name__)


def _connection(environment: str) -> Connection:
    connection = service.get_connection(environment)
    if connection is None:
        abort(404, f"There is no connection for the environment {environment!r}.")
    return connection


def _render(step: str, connection: Connection, status: int = 200, **context):
    return (
        render_template(
            f"setup/{step.replace('-', '_')}.html",
            connection=connection,
            steps=steps.progress(connection),
            current=step,
            action_form=ActionForm(),
            **context,
        ),
        status,
    )


def _back(endpoint: str, connection: Connection):
    return redirect(url_for(endpoint, environment=connection.environment), 303)


def _check_action_form() -> None:
    if not ActionForm().validate_on_submit():
        abort(400)


@bp.route("")
@operator_required
def list_connections():
    """Every connection and where its setup stands."""
    connections = service.list_connections()
    return render_template(
        "setup/overview.html",
        connections=connections,
        progress={c.id: steps.progress(c) for c in connections},
    )


@bp.route("/new", methods=["GET", "POST"])
@operator_required
def new_connection():
    """Start a connection for a new environment."""
    form = NewConnectionForm()
    if form.validate_on_submit():
        try:
            connection = service.create_connection(
                current_user, form.environment.data, form.display_name.data
            )
        except service.SetupError as exc:
            form[exc.field or "environment"].errors.append(str(exc))
        else:
            return _back("setup.edit_credentials", connection)
    status = 400 if request.method == "POST" else 200
    return render_template("setup/new.html", form=form), status


@bp.route("/<environment>")
@operator_required
def resume(environment: str):
    """Continue the wizard at the first unfinished step."""
    connection = _connection(environment)
    return _back(steps.endpoint(steps.first_open(connection)), connection)


@bp.route("/<environment>/credentials", methods=["GET", "POST"])
@operator_required
def edit_credentials(environment: str):
    """Step 1: the WHOOP client id and secret (write-only)."""
    connection = _connection(environment)
    form = CredentialsForm(
        client_id=connection.client_id, partner_client_id=connection.partner_client_id
    )
    if form.validate_on_submit():
        try:
            changed = service.save_credentials(
                current_user,
                connection,
                client_id=form.client_id.data,
                client_secret=form.client_secret.data,
                partner_client_id=form.partner_client_id.data or "",
                partner_client_secret=form.partner_client_secret.data,
                webhook_signing_secret=form.webhook_signing_secret.data,
            )
        except service.SetupError as exc:
            flash(str(exc), "danger")
        else:
            flash("Credentials saved." if changed else "Nothing changed.", "success")
            return _back("setup.edit_credentials", connection)
    status = 400 if request.method == "POST" else 200
    masks = {name: Connection.mask(getattr(connection, name)) for name in service.SECRET_FIELDS}
    return _render("credentials", connection, status, form=form, masks=masks)


@bp.post("/<environment>/credentials/verify")
@operator_required
def verify_credentials(environment: str):
    """Ask WHOOP whether the stored credentials are right."""
    connection = _connection(environment)
    _check_action_form()
    try:
        outcome = service.verify_credentials(current_user, connection)
    except service.SetupError as exc:
        flash(str(exc), "danger")
    else:
        flash(connection.credentials_message, "success" if outcome == "accepted" else "danger")
    return _back("setup.edit_credentials", connection)


@bp.route("/<environment>/subdomain", methods=["GET", "POST"])
@operator_required
def edit_subdomain(environment: str):
    """Step 2: the subdomain for connect pages and webhooks."""
    connection = _connection(environment)
    form = SubdomainForm(hostname=connection.hostname)
    if form.validate_on_submit():
        try:
            service.set_hostname(current_user, connection, form.hostname.data)
        except service.SetupError as exc:
            form.hostname.errors.append(str(exc))
        else:
            service.request_dns_check(connection)
            flash(f"Subdomain set to {connection.hostname}. Now add the DNS records.", "success")
            return _back("setup.show_dns", connection)
    status = 400 if request.method == "POST" else 200
    return _render("subdomain", connection, status, form=form)


@bp.route("/<environment>/dns")
@operator_required
def show_dns(environment: str):
    """Step 3: the records to add, and what DNS says about them."""
    connection = _connection(environment)
    if not connection.hostname:
        flash("Choose the subdomain first.", "info")
        return _back("setup.edit_subdomain", connection)
    return _render("dns", connection, **_dns_context(connection))


def _dns_context(connection: Connection, issuer_form: IssuerRecordForm | None = None) -> dict:
    record = service.issuer_record(connection)
    if issuer_form is None:
        issuer_form = IssuerRecordForm(
            name=record.name if record else "", type=record.type if record else "CNAME"
        )
    return {
        "records": service.expected_records(connection),
        "result": service.dns_result(connection),
        "issuer_form": issuer_form,
        "has_issuer_record": record is not None,
    }


def _check_now_key() -> str:
    return "dns-check-now:" + (request.view_args or {}).get("environment", "")


@bp.post("/<environment>/dns/check")
@operator_required
@limiter.limit(lambda: current_app.config["DNS_CHECK_NOW_LIMIT"], key_func=_check_now_key)
def check_dns_now(environment: str):
    """Queue a DNS check now (rate limited)."""
    connection = _connection(environment)
    _check_action_form()
    try:
        service.request_dns_check(connection)
    except service.SetupError as exc:
        flash(str(exc), "danger")
    else:
        flash("Checking DNS now; this page updates when the result is in.", "info")
    return _back("setup.show_dns", connection)


@bp.errorhandler(RateLimitExceeded)
def too_many_checks(exc: RateLimitExceeded):
    """ "Check now" pressed too often: back to the DNS page, saying when to try again."""
    environment = (request.view_args or {}).get("environment")
    if request.endpoint != "setup.check_dns_now" or not environment:
        return render_error(429, "Too many attempts. Wait a minute, then try again.", 60)
    current = limiter.current_limit
    wait = max(1, math.ceil(current.reset_at - time.time())) if current else 60
    at = datetime.fromtimestamp(time.time() + wait, UTC).strftime("%H:%M:%S UTC")
    flash(
        f"Check now was pressed too often ({current_app.config['DNS_CHECK_NOW_LIMIT']} "
        f"allowed). Try again in {counted(wait, 'second')} (after {at}); "
        "the automatic checks carry on meanwhile.",
        "warning",
    )
    return redirect(url_for("setup.show_dns", environment=environment), 303)


@bp.get("/<environment>/dns/status")
@operator_required
def dns_status(environment: str):
    """The DNS status as JSON, polled by the DNS page while a check runs."""
    connection = _connection(environment)
    result = service.dns_result(connection)
    return jsonify(
        status=connection.status,
        checking=connection.dns_check_requested_at is not None,
        checked_at=connection.dns_checked_at.isoformat() if connection.dns_checked_at else None,
        findings=[f.to_dict() for f in result.findings] if result else [],
    )


@bp.post("/<environment>/dns/issuer")
@operator_required
def set_issuer_record(environment: str):
    """Use a validation record from another certificate issuer."""
    connection = _connection(environment)
    form = IssuerRecordForm()
    if form.validate_on_submit():
        try:
            service.set_issuer_record(
                current_user, connection, form.name.data, form.type.data, form.value.data
            )
        except service.SetupError as exc:
            form.value.errors.append(str(exc))
        else:
            service.request_dns_check(connection)
            flash("Validation record saved; checking DNS.", "success")
            return _back("setup.show_dns", connection)
    if not connection.hostname:
        return _back("setup.edit_subdomain", connection)
    return _render("dns", connection, 400, **_dns_context(connection, form))


@bp.post("/<environment>/dns/issuer/clear")
@operator_required
def clear_issuer_record(environment: str):
    """Go back to whoopadmin's own validation CNAME."""
    connection = _connection(environment)
    _check_action_form()
    service.clear_issuer_record(current_user, connection)
    if connection.hostname:
        service.request_dns_check(connection)
    return _back("setup.show_dns", connection)


@bp.route("/<environment>/certificate")
@operator_required
def show_certificate(environment: str):
    """Step 4: how certificates are issued, and whether they can be now."""
    connection = _connection(environment)
    allowed = service.tls_allowed(connection.hostname or "")
    plain_http = current_app.config["PUBLIC_SCHEME"] == "http"
    return _render("certificate", connection, tls_allowed=allowed, plain_http=plain_http)


@bp.route("/<environment>/whoop")
@operator_required
def show_whoop(environment: str):
    """Step 5: the exact strings to paste into WHOOP's developer dashboard."""
    connection = _connection(environment)
    return _render(
        "whoop",
        connection,
        redirect_url=service.redirect_url(connection),
        webhook_url=service.webhook_url(connection),
        scopes=service.scopes(),
    )


@bp.post("/<environment>/whoop")
@operator_required
def confirm_whoop(environment: str):
    """The operator confirms the registration at WHOOP is done."""
    connection = _connection(environment)
    _check_action_form()
    if not connection.hostname:
        flash("Choose the subdomain first: the URLs depend on it.", "danger")
        return _back("setup.edit_subdomain", connection)
    service.mark_registered(current_user, connection)
    return _back("setup.show_go_live", connection)


@bp.route("/<environment>/go-live", methods=["GET", "POST"])
@operator_required
def show_go_live(environment: str):
    """Step 6: the checklist, the member cap, and the go-live button."""
    connection = _connection(environment)
    status = 200
    if request.method == "POST":
        _check_action_form()
        try:
            service.go_live(current_user, connection)
        except service.SetupError as exc:
            flash(str(exc), "danger")
            status = 409
        else:
            flash(f"{connection.environment} is live.", "success")
            return _back("setup.show_go_live", connection)
    cap = member_cap.status(connection)
    return _render(
        "go-live",
        connection,
        status,
        checklist=service.checklist(connection),
        cap=cap,
        cap_message=member_cap.message(cap),
        endpoints={key: endpoint for key, _, endpoint in steps.STEPS},
        last_test=last_test_event(connection),
        test_result=test_event_result(connection),
    )


@bp.post("/<environment>/go-live/test-webhook")
@operator_required
def send_test_webhook(environment: str):
    """Queue a signed test event through the public webhook URL (sent by a worker)."""
    from whoopadmin.webhooks.service import queue_test_event

    connection = _connection(environment)
    _check_action_form()
    if not connection.hostname or connection.client_secret_sealed is None:
        flash("Save the credentials and choose the subdomain first.", "danger")
        return _back("setup.show_go_live", connection)
    queue_test_event(current_user, connection)
    flash("Sending a test webhook; this page shows the result.", "info")
    return _back("setup.show_go_live", connection)


@bp.route("/<environment>/settings", methods=["GET", "POST"])
@operator_required
def edit_settings(environment: str):
    """Redirect origins, app schemes, WHOOP rate limits and approval."""
    connection = _connection(environment)
    form = SettingsForm(
        display_name=connection.display_name,
        allowed_origins="\n".join(connection.allowed_origins or []),
        app_schemes="\n".join(connection.app_schemes or []),
        rate_limit_per_minute=connection.rate_limit_per_minute,
        rate_limit_per_day=connection.rate_limit_per_day,
        approved_by_whoop=connection.approved_by_whoop,
        member_cap=connection.member_cap,
        backfill_days=connection.backfill_days,
        reference_id_policy=connection.reference_id_policy,
        pkce_off=not connection.use_pkce,
    )
    if form.validate_on_submit():
        try:
            service.save_settings(
                current_user,
                connection,
                display_name=form.display_name.data,
                allowed_origins=form.allowed_origins.data,
                app_schemes=form.app_schemes.data,
                rate_limit_per_minute=form.rate_limit_per_minute.data,
                rate_limit_per_day=form.rate_limit_per_day.data,
                approved_by_whoop=form.approved_by_whoop.data,
                member_cap=form.member_cap.data,
                backfill_days=form.backfill_days.data or connection.backfill_days,
                use_pkce=not form.pkce_off.data,
                reference_id_policy=form.reference_id_policy.data,
            )
        except service.SetupError as exc:
            form[exc.field or "display_name"].errors.append(str(exc))
        else:
            flash("Settings saved.", "success")
            return _back("setup.edit_settings", connection)
    status = 400 if request.method == "POST" else 200
    return _render("settings", connection, status, form=form)


@bp.route("/<environment>/connect-links", methods=["GET", "POST"])
@operator_required
def connect_links(environment: str):
    """Create a connect link (with a QR code) and see recent ones."""
    import segno
    from sqlalchemy import select

    from whoopadmin.connect import service as connect_service
    from whoopadmin.connect.models import ConnectSession
    from whoopadmin.extensions import db

    connection = _connection(environment)
    form = ConnectLinkForm()
    created = None
    status = 200
    if form.validate_on_submit():
        try:
            session, token = connect_service.create_session(
                connection,
                reference_id=form.reference_id.data,
                success_redirect_url=form.success_redirect_url.data,
                failure_redirect_url=form.failure_redirect_url.data,
                language=form.language.data,
                expires_in=form.expires_in.data * 60,
                created_by=current_user,
            )
        except connect_service.ConnectError as exc:
            if exc.code == "connection_not_live":  # the page says why and links the step
                status = 409
            else:
                target = exc.field if exc.field in form else "reference_id"
                form[target].errors.append(str(exc))
                status = 400
        else:
            url = connect_service.connect_url(connection, token)
            created = {
                "url": url,
                "session": session,
                "qr": segno.make(url, error="m").svg_inline(scale=4, dark="#212529"),
            }
    elif request.method == "POST":
        status = 400
    recent = db.session.scalars(
        select(ConnectSession)
        .where(ConnectSession.connection_id == connection.id)
        .order_by(ConnectSession.id.desc())
        .limit(20)
    ).all()
    cap = member_cap.status(connection)
    return _render(
        "connect-links",
        connection,
        status,
        form=form,
        created=created,
        recent=recent,
        now=service.utcnow(),
        cap=cap,
        warning=member_cap.message(cap),
        missing=steps.missing_for_live(connection),
    )


@internal.get("/internal/tls/ask")
@limiter.exempt
@csrf.exempt
def tls_ask():
    """Caddy's on-demand TLS question: 200 only for verified or active hostnames."""
    if not peers.internal_request(current_app.config["TLS_ASK_ALLOWED"]):
        abort(403, "Not an allowed TLS server address.")
    domain = request.args.get("domain", "")
    if not domain or len(domain) > 300:
        abort(400, "Give the hostname as ?domain=.")
    if not service.tls_allowed(domain):
        abort(404, "Not a verified hostname of this deployment.")
    return jsonify(domain=domain.lower(), allowed=True)
