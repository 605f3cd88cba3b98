"""The Partner API: JSON client-credentials tokens and lab requisition endpoints."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, g, request

from . import data as gen
from .state import PARTNER_SCOPE, SandboxError
from .web import error_response, json_body, json_response, state

bp = Blueprint("sandbox_partner", __name__, url_prefix="/developer/v2/partner")


@bp.before_request
def authenticate() -> Response | None:
    """Every partner route but the token endpoint needs a partner bearer token."""
    if request.endpoint == "sandbox_partner.token":
        return None
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    try:
        if scheme.lower() != "bearer" or not value.strip():
            raise SandboxError(401, "invalid_token", "Missing bearer token.")
        g.partner = state().partner_bearer(value.strip())
    except SandboxError as exc:
        return error_response(exc)
    return None


@bp.errorhandler(SandboxError)
def sandbox_error(exc: SandboxError) -> Response:
    """Typed errors become JSON with their status."""
    return error_response(exc)


@bp.post("/token")
def token() -> Response:
    """``{grant_type: client_credentials, client_id, client_secret, scope}`` as JSON."""
    body = json_body()
    if body.get("grant_type", "client_credentials") != "client_credentials":
        raise SandboxError(400, "unsupported_grant_type", "Use grant_type client_credentials.")
    if body.get("scope", PARTNER_SCOPE) != PARTNER_SCOPE:
        raise SandboxError(400, "invalid_scope", f"The only partner scope is {PARTNER_SCOPE}.")
    return json_response(state().partner_token(body.get("client_id"), body.get("client_secret")))


def _owned(table: dict, raw_id: str) -> dict:
    try:
        key = str(uuid.UUID(raw_id))
    except ValueError:
        raise SandboxError(400, "invalid_request", "id must be a UUID") from None
    found = table.get(key)
    if found is None or found["owner"] != g.partner.client_id:
        raise SandboxError(404, "not_found", "Not found or not owned by this partner")
    return found


def _status_update(record: dict, body: dict) -> None:
    value = body.get("task_business_status")
    if not isinstance(value, str) or not value:
        raise SandboxError(400, "invalid_request", "task_business_status must be a string")
    if "reason" in body and not isinstance(body["reason"], str):
        raise SandboxError(400, "invalid_request", "reason must be a string")
    record["task_business_status"] = value


@bp.post("/development/add-test-data")
def add_test_data() -> Response:
    """Create a lab requisition (a lab_requisition.created webhook follows)."""
    state().add_test_requisition(g.partner)
    return Response(status=204)


@bp.get("/requisition/<raw_id>")
def requisition(raw_id: str) -> Response:
    """A LabRequisition."""
    sandbox = state()
    with sandbox.lock:
        return json_response(_owned(sandbox.requisitions, raw_id)["record"])


@bp.patch("/requisition/<raw_id>/status")
def requisition_status(raw_id: str) -> Response:
    """Set the task business status of every service request of a requisition."""
    sandbox = state()
    body = json_body()
    with sandbox.lock:
        found = _owned(sandbox.requisitions, raw_id)
        for sr in found["record"]["service_requests"]:
            _status_update(sr, body)
        found["record"]["updated_at"] = gen.iso_ms(sandbox.clock.now_ms())
    return Response(status=204)


@bp.get("/service-request/<raw_id>")
def service_request(raw_id: str) -> Response:
    """A ServiceRequest."""
    sandbox = state()
    with sandbox.lock:
        return json_response(_owned(sandbox.service_requests, raw_id)["record"])


@bp.patch("/service-request/<raw_id>/status")
def service_request_status(raw_id: str) -> Response:
    """Set one service request's task business status."""
    sandbox = state()
    body = json_body()
    with sandbox.lock:
        found = _owned(sandbox.service_requests, raw_id)
        _status_update(found["record"], body)
        return json_response(found["record"])


@bp.post("/service-request/<raw_id>/results")
def service_request_results(raw_id: str) -> Response:
    """Attach a diagnostic report to a service request."""
    sandbox = state()
    body = json_body()
    observations = body.get("observations", [])
    if not isinstance(observations, list) or not all(isinstance(o, dict) for o in observations):
        raise SandboxError(400, "invalid_request", "observations must be a list of objects")
    with sandbox.lock:
        found = _owned(sandbox.service_requests, raw_id)
        found.setdefault("results", []).append(body)
    return Response(status=201)
