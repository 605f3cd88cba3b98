"""``GET /api/v1/users/{user_id}/export?format=csv|ndjson|fhir`` (route on the API blueprint).

Needs the ``read`` permission; a user out of the key's scope is the usual 404, an erased one
410 ``user_erased`` and one whose erasure is scheduled 409 ``erasure_pending``.
"""

from __future__ import annotations

from flask import Response, request, stream_with_context

from whoopadmin.api.access import api_key_required, current_key, error
from whoopadmin.api.views import _bad_user_id, bp
from whoopadmin.erasure.api import visible_or_gone
from whoopadmin.exports import service


def download(subject: service.Subject, fmt: str) -> Response:
    """The streamed response of one export (used by the API and the support page)."""
    name = service.filename(subject, fmt)
    response = Response(
        stream_with_context(service.export(subject, fmt)), mimetype=service.MEDIA_TYPES[fmt]
    )
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/users/<user_id>/export")
@api_key_required("read")
def export_user(user_id: str):
    """One user's stored data as a CSV zip, NDJSON or a FHIR R4 Bundle."""
    if bad := _bad_user_id(user_id):
        return bad
    fmt = request.args.get("format")
    if fmt not in service.FORMATS:
        return error(
            400,
            "invalid_request",
            f"format must be one of {', '.join(service.FORMATS)}.",
            "format",
        )
    link, missing = visible_or_gone(user_id)
    if missing is not None:
        return missing
    try:
        subject, fmt = service.begin(current_key(), link, fmt)
    except service.ExportError as exc:
        return error(409, exc.code, str(exc))
    return download(subject, fmt)
