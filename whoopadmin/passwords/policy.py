"""What a staff password must be: long enough, and not easy to guess (zxcvbn)."""

from __future__ import annotations

from flask import current_app


class WeakPassword(ValueError):
    """The password is refused; the message says why, and is shown as is."""


def check(password: str, user_inputs: list[str] | tuple[str, ...] = ()) -> None:
    """Refuse passwords that are short, padded with spaces, common or easy to guess.

    zxcvbn (Dropbox's estimator, from PyPI, with its lists of the 30,000 most common
    passwords, names and English words) scores a password from 0 to 4; below
    ``MIN_PASSWORD_SCORE`` (3) is refused: "password1234", "qwertyuiop123" and the
    account's own e-mail address among them.
    """
    from zxcvbn import zxcvbn

    password = password or ""
    minimum = int(current_app.config["MIN_PASSWORD_LENGTH"])
    if len(password) < minimum:
        raise WeakPassword(f"The password must have at least {minimum} characters.")
    if password.strip() != password:
        raise WeakPassword("The password must not start or end with a space.")
    if len(password) > 1024:
        raise WeakPassword("The password must have at most 1024 characters.")
    inputs = ["whoopadmin", "whoop"]
    for value in user_inputs:
        if value:
            inputs += [value, *value.replace("@", " ").replace(".", " ").split()]
    result = zxcvbn(password, user_inputs=inputs)
    if result["score"] < int(current_app.config["MIN_PASSWORD_SCORE"]):
        warning = result["feedback"]["warning"] or "It is too easy to guess."
        hints = " ".join(result["feedback"]["suggestions"])
        raise WeakPassword(f"Choose a less common password. {warning} {hints}".strip())
