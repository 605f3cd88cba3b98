"""Role guards for views."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from flask import abort
from flask_login import current_user, login_required


def role_required(*roles: str) -> Callable:
    """Require a signed-in user with one of ``roles``; others get 403."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if current_user.role not in roles:
                abort(403, "This page is for operators only.")
            return view(*args, **kwargs)

        return wrapped

    return decorator


operator_required = role_required("operator")
staff_required = role_required("operator", "support")
