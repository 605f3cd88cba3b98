"""The translation catalogues: every string the end user's pages can show is translated.

A string marked for translation (``_()`` in a template, ``_l()`` in Python) that has no
German translation fails here, with the command that fixes it: strings added later fail
loudly until someone translates them.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import pytest
from babel.messages import extract
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from flask_babel import LazyString

from whoopadmin import i18n
from whoopadmin.connect import hosted, service
from whoopadmin.connect.views import SHARED

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = [code for code in i18n.available_languages() if code != i18n.SOURCE_LANGUAGE]
FIX = (
    "run the commands in whoopadmin/translations/README.md (extract, update, translate "
    "the empty msgstr entries, compile)"
)


def _catalog(code: str):
    with open(i18n.TRANSLATIONS / code / "LC_MESSAGES" / "messages.po", "rb") as fh:
        return read_po(fh, locale=code)


@lru_cache(maxsize=1)
def _source_messages() -> frozenset[str]:
    """Every message id the code marks for translation, extracted as ``pybabel extract``
    does with babel.cfg."""
    with open(ROOT / "babel.cfg") as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    keywords = {**extract.DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
    found = set()
    for _filename, _lineno, message, _comments, _context in extract.extract_from_dir(
        str(ROOT), method_map, options_map, keywords=keywords
    ):
        found.add(message if isinstance(message, str) else message[0])
    return frozenset(found)


def test_german_is_available():
    assert i18n.available_languages() == ("en", "de")
    assert dict(i18n.language_names()) == {"en": "English", "de": "German (Deutsch)"}


def test_the_extraction_finds_the_hosted_pages_strings():
    """The check below is only as good as the extraction: it must see every kind of source."""
    found = _source_messages()
    assert "Continue to WHOOP" in found  # a template
    assert "Your WHOOP account is already connected" in found  # hosted.py
    assert str(service.REASONS["access_denied"]) in found  # connect/service.py
    assert str(SHARED[0][1]) in found  # connect/views.py


@pytest.mark.parametrize("code", LANGUAGES)
def test_every_message_is_translated(code):
    catalog = _catalog(code)
    missing = sorted(
        message_id
        for message_id in _source_messages()
        if message_id not in catalog or not catalog[message_id].string or catalog[message_id].fuzzy
    )
    assert not missing, f"{len(missing)} message(s) without a {code} translation: {FIX}\n" + (
        "\n".join(missing)
    )


@pytest.mark.parametrize("code", LANGUAGES)
def test_translations_keep_their_placeholders(code):
    """Babel's own checks: a translation that drops or renames %(name)s is an error."""
    problems = [
        (message.id, [str(e) for e in errors]) for message, errors in _catalog(code).check()
    ]
    assert not problems


@pytest.mark.parametrize("code", LANGUAGES)
def test_the_compiled_catalogue_is_up_to_date(code):
    """The committed .mo (what the app reads) says exactly what the .po says."""
    catalog = _catalog(code)
    expected = io.BytesIO()
    write_mo(expected, catalog)
    expected.seek(0)
    with open(i18n.TRANSLATIONS / code / "LC_MESSAGES" / "messages.mo", "rb") as fh:
        compiled = read_mo(fh)
    want = {m.id: m.string for m in read_mo(expected) if m.id}
    have = {m.id: m.string for m in compiled if m.id}
    assert have == want, "messages.mo is stale: pybabel compile -d whoopadmin/translations"


def test_every_reason_and_outcome_is_marked_for_translation():
    """A reason code added with a plain string would reach a German page in English."""
    tables = {
        "connect.service.REASONS": service.REASONS,
        "hosted.TITLES": hosted.TITLES,
        "hosted.MESSAGES": hosted.MESSAGES,
        "hosted.ERROR_TITLES": hosted.ERROR_TITLES,
        "hosted.ERROR_MESSAGES": hosted.ERROR_MESSAGES,
        "connect.views.SHARED": dict(SHARED),
    }
    plain = [
        f"{name}[{key!r}]"
        for name, table in tables.items()
        for key, value in table.items()
        if not isinstance(value, LazyString)
    ]
    assert not plain, f"wrap these in lazy_gettext (_l) and translate them: {plain}"


def _render_in(app, language: str, values) -> list[str]:
    from flask import g

    with app.test_request_context(headers={"Accept-Language": language}):
        g.public_page = True  # a page on a connection's host: translated
        return [str(value) for value in values]


def test_every_reason_reads_differently_in_german(app):
    """Each reason code the callback can give has its own German words on the page."""
    english = _render_in(app, "en", service.REASONS.values())
    german = _render_in(app, "de", service.REASONS.values())
    same = [code for code, en, de in zip(service.REASONS, english, german, strict=True) if en == de]
    assert not same
