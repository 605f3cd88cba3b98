"""What "printable" means for the ids and names people send us (reference ids, names):
no control (Cc), format (Cf), surrogate (Cs), line or paragraph separator (Zl, Zp)
character, and no space but U+0020 (Zs). Letters, marks, digits, punctuation and symbols
of every script are fine, so are private-use and not-yet-assigned code points.

Unlike ``str.isprintable`` the rule fits in a short regex character class, so the OpenAPI
document can state it exactly (and schemathesis can generate text from it quickly).
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Zs"})


def _escape(code: int) -> str:
    if code < 0x80:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    # No \U escape in ECMA-262 and no \u{…} in Python: the character itself.
    return chr(code)


@cache
def forbidden_class() -> str:
    """The body of a regex character class of the forbidden characters, surrogates left out
    (they cannot appear in UTF-8 text, and some regex engines refuse them in a pattern)."""
    parts, start = [], None
    for code in range(0x110001):
        inside = (
            code <= 0x10FFFF
            and code != 0x20
            and not 0xD800 <= code <= 0xDFFF
            and unicodedata.category(chr(code)) in FORBIDDEN_CATEGORIES
        )
        if inside and start is None:
            start = code
        elif not inside and start is not None:
            last = code - 1
            parts.append(_escape(start) if start == last else f"{_escape(start)}-{_escape(last)}")
            start = None
    return "".join(parts)


@cache
def _forbidden_re() -> re.Pattern[str]:
    return re.compile(f"[{forbidden_class()}\\ud800-\\udfff]")


def is_printable(text: str) -> bool:
    """Whether ``text`` holds no forbidden character (see the module docstring)."""
    return _forbidden_re().search(text) is None
