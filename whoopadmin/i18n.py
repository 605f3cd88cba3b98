"""Languages of the end user's pages (Flask-Babel): which exist, which one a request gets.

Only the pages on a connection's host (the connect page, its results, its error pages)
are translated; the admin pages are English. A page's language is the connect session's
``language`` when it names one, else the browser's ``Accept-Language``, else English.
Catalogues live in ``whoopadmin/translations/`` (see the README there to add a string or
a language).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from babel import Locale
from flask import Flask, g, request

TRANSLATIONS = Path(__file__).resolve().parent / "translations"
# The language the pages are written in: it needs no catalogue.
SOURCE_LANGUAGE = "en"
# A BCP 47-ish tag that fits the 16-character column (fullmatch: no trailing newline;
# ASCII only, so "ën" or a full-width "ｄｅ" are refused rather than matched).
TAG_RE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}")
MAX_TAG = 16


class LanguageError(ValueError):
    """A language that cannot be used; ``code`` is ``invalid`` (not a tag) or ``unsupported``."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@lru_cache(maxsize=1)
def available_languages() -> tuple[str, ...]:
    """Every language the hosted pages can be shown in: English and each compiled catalogue."""
    compiled = sorted(
        path.parent.parent.name for path in TRANSLATIONS.glob("*/LC_MESSAGES/messages.mo")
    )
    return (SOURCE_LANGUAGE, *[code for code in compiled if code != SOURCE_LANGUAGE])


def language_names() -> list[tuple[str, str]]:
    """(code, "English name (own name)") for each available language, for a form's choices."""
    names = []
    for code in available_languages():
        locale = Locale.parse(code)
        english, own = locale.get_display_name("en"), locale.get_display_name(code)
        names.append((code, english if english == own else f"{english} ({own})"))
    return names


def primary(tag: str) -> str:
    """A tag's language subtag, lower-cased: ``de`` for ``de-AT``."""
    return tag.split("-", 1)[0].lower()


def check_language(value: object) -> str | None:
    """A connect session's ``language``: None when blank, the tag when its language exists.

    A tag whose language has a translation is accepted whatever its region or script
    (``de-AT``, ``de-CH``, even ``de-XX`` show the German pages); the tag is stored as
    given. Raises LanguageError for a malformed tag (``invalid``) or a language with no
    translation (``unsupported``).
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_TAG or not TAG_RE.fullmatch(value):
        raise LanguageError("language must be a language tag such as en or de-AT.", "invalid")
    if primary(value) not in available_languages():
        raise LanguageError(
            f"language {value!r} has no translation; use one of: "
            f"{', '.join(available_languages())}.",
            "unsupported",
        )
    return value


def best_language(tag: str | None) -> str | None:
    """The available language for a stored or requested tag, if there is one."""
    if tag and isinstance(tag, str) and len(tag) <= MAX_TAG and TAG_RE.fullmatch(tag):
        code = primary(tag)
        if code in available_languages():
            return code
    return None


def use_language(tag: str | None) -> None:
    """Show this request's hosted page in ``tag`` (a connect session's language), if given."""
    from flask_babel import refresh

    g.page_language = best_language(tag)
    refresh()  # a locale chosen earlier in the request must not stick


def browser_language() -> str:
    """The best available language for the request's ``Accept-Language`` (English if none).

    Werkzeug parses the header leniently: junk entries and junk quality values are
    dropped, and ``de-DE`` matches ``de``.
    """
    return request.accept_languages.best_match(available_languages()) or SOURCE_LANGUAGE


def select_locale() -> str:
    """Flask-Babel's locale selector: English on admin pages; the page language on public ones."""
    if g.get("connection") is None and not g.get("public_page"):
        return SOURCE_LANGUAGE
    return g.get("page_language") or browser_language()


def vary_on_language(response):
    """A page on a connection's host may differ by Accept-Language: tell caches so."""
    if g.get("connection") is not None or g.get("public_page"):
        response.vary.add("Accept-Language")
    return response


def init_app(app: Flask) -> None:
    """Bind Flask-Babel to ``app`` with the package's catalogues and the selector above."""
    from flask_babel import get_locale

    from whoopadmin.extensions import babel

    babel.init_app(
        app,
        locale_selector=select_locale,
        default_translation_directories=str(TRANSLATIONS),
    )
    app.jinja_env.globals["get_locale"] = get_locale  # for <html lang="…">
    app.after_request(vary_on_language)
