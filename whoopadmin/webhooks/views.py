"""The webhook endpoints WHOOP posts to."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from whoopadmin.extensions import csrf, limiter
from whoopadmin.web import request_hostname
from whoopadmin.webhooks import service

bp = Blueprint("webhooks", __name__)
csrf.exempt(bp)  # signed by WHOOP, not posted from our forms
limiter.exempt(bp)


@limiter.request_filter
def _not_limited() -> bool:
    """Exempt, so skip the limiter's work too (resolving limits: a seventh of a webhook)."""
    return request.blueprint == "webhooks"


def _body() -> bytes | None:
    """The raw body, or None when it is over the limit (read no further than that)."""
    request.max_content_length = service.MAX_BODY
    try:
        return request.get_data(cache=True)
    except RequestEntityTooLarge:
        return None


def _answer(outcome: service.Outcome):
    if outcome.status == 204:
        return "", 204
    return jsonify(outcome.body), outcome.status


def _oversize(connection):
    return _answer(service.reject(connection, 413, "oversize", "The body is too large."))


def _receive(target: service.Receiver | None):
    body = _body()
    if body is None:
        return _oversize(target)
    return _answer(service.receive_member_event(target, request.headers, body))


@bp.post("/hooks/whoop/push")
def push():
    """Member webhooks on the connection's subdomain (the busiest route: see ``receiver``)."""
    return _receive(service.receiver("host", request_hostname()))


@bp.post("/hooks/whoop/push/<client_id>")
def push_by_client(client_id: str):
    """Member webhooks that name their connection by WHOOP client id (any host)."""
    return _receive(service.receiver("client_id", client_id))


@bp.post("/hooks/whoop/partner")
def partner():
    """Partner API webhooks (``WHOOP-Signed``) on the connection's subdomain."""
    body = _body()
    if body is None:
        return _oversize(g.connection)
    return _answer(service.receive_partner_event(g.connection, request.headers, body))
