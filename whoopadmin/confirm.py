"""Confirmation pages for destructive actions: server-rendered, no JavaScript needed.

The pattern, for an action at ``/things/<id>/delete`` (``methods=["GET", "POST"]``)::

    if not confirmed():
        return confirmation_page(title=..., consequences=[...], button=..., cancel_url=...)
    ... act ...

The page's button posts back to the same URL with the CSRF token and ``confirm=yes``.
A GET, or a POST without ``confirm=yes`` (an old one-click form, a forged request that
got hold of a token), only ever shows the page: nothing happens without the second step.
"""

from __future__ import annotations

from flask import abort, render_template, request
from flask_wtf import FlaskForm
from wtforms import HiddenField


class ConfirmForm(FlaskForm):
    """The confirmation page's form: the CSRF token and ``confirm=yes``."""

    # No default: WTForms would fill a default in for a POST that lacks the field, and an
    # old one-click form (no ``confirm``) would then count as confirmed.
    confirm = HiddenField()


def confirmed() -> bool:
    """Whether this request is the confirmation page's POST (400 on a bad CSRF token)."""
    if request.method != "POST":
        return False
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    return request.form.get("confirm") == "yes"


def confirmation_page(
    *, title: str, consequences: list[str], button: str, cancel_url: str, danger: bool = True
):
    """The page that says exactly what will happen, with a confirm button and a cancel link."""
    return render_template(
        "confirm.html",
        title=title,
        consequences=consequences,
        button=button,
        cancel_url=cancel_url,
        danger=danger,
        form=ConfirmForm(formdata=None, confirm="yes"),
        action=request.path,
    )
