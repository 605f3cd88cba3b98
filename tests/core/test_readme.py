"""The README walk-through names what the pages show; pages name README sections that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _page_sources() -> str:
    """Every text a page can show: templates, and the Python that holds labels and buttons."""
    files = [
        *ROOT.joinpath("templates").rglob("*.html"),
        *ROOT.joinpath("whoopadmin").rglob("*.py"),
    ]
    return "\n".join(path.read_text() for path in files)


def _quick_start_steps() -> str:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if re.match(r"^(\d+\.| {3})", line))


def test_every_name_in_the_walk_through_is_on_a_page():
    steps = re.sub(r"\s+", " ", _quick_start_steps())
    names = [
        part.strip()
        for bold in re.findall(r"\*\*(.+?)\*\*", steps)
        for part in bold.split(" → ")
        if part.strip()
    ]
    assert len(names) >= 15, names  # the walk-through names its buttons and fields
    sources = _page_sources().replace("&#39;", "'")
    missing = [name for name in names if name not in sources]
    assert not missing, f"the README names what no page shows: {missing}"


def test_quoted_page_text_in_the_walk_through_is_on_a_page():
    quoted = re.findall(r'"([A-Z][^"<>{}]{11,})"', re.sub(r"\s+", " ", _quick_start_steps()))
    sources = _page_sources()
    assert quoted and not [q for q in quoted if q not in sources]


def test_pages_point_to_readme_sections_that_exist():
    """Pages that send the operator to the README name its real section headings."""
    headings = {m.strip() for m in re.findall(r"^#{2,3} (.+)$", README, re.M)}
    secret_page = (ROOT / "templates/destinations/secret.html").read_text()
    named = re.findall(r'section "([^"]+)"|under "([^"]+)"', secret_page)
    named = [a or b for a, b in named]
    assert named and set(named) <= headings, (named, sorted(headings))
