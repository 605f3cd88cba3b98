"""A person-readable name for a User-Agent string ("Firefox on Linux")."""

from __future__ import annotations

# Order matters: Edge and Opera say "Chrome" too, and Chrome says "Safari".
BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chromium/", "Chromium"),
    ("HeadlessChrome/", "Headless Chrome"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
    ("python-requests/", "Python requests"),
    ("Werkzeug/", "Werkzeug test client"),
)
SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def describe(user_agent: str | None) -> str:
    """Return "Browser on System" for ``user_agent``, or "Unknown browser"."""
    text = user_agent or ""
    browser = next((name for mark, name in BROWSERS if mark in text), "Unknown browser")
    system = next((name for mark, name in SYSTEMS if mark in text), None)
    return f"{browser} on {system}" if system else browser
