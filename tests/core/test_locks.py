"""The lock files pin every dependency of pyproject.toml, within its bounds, with hashes."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s\\;]+)")


def _pins(path: Path) -> dict[str, tuple[str, int]]:
    """Each pinned package: (version, number of hashes)."""
    pins: dict[str, tuple[str, int]] = {}
    current = None
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            pins[current] = (match.group(2), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
        elif not line.startswith(" "):
            current = None
    return pins


def _requirements(extra: str | None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(text) for text in project["dependencies"]]
    if extra:
        found += [Requirement(text) for text in project["optional-dependencies"][extra]]
    return found


@pytest.mark.parametrize(("lock", "extra"), [("production.lock", None), ("dev.lock", "dev")])
def test_every_dependency_is_locked_within_its_bounds_with_hashes(lock, extra):
    pins = _pins(ROOT / "requirements" / lock)
    assert pins, f"{lock} pins nothing"
    for requirement in _requirements(extra):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{lock} does not pin {requirement.name}: lock again"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock} pins {name}=={version}, outside pyproject.toml's {requirement.specifier}"
        )
    unhashed = sorted(name for name, (_, hashes) in pins.items() if hashes == 0)
    assert not unhashed, f"{lock} pins without a hash: {unhashed}"


def test_the_production_lock_is_the_dev_lock_without_the_test_tools():
    """The same versions where both pin a package: tests run what production installs."""
    production = _pins(ROOT / "requirements" / "production.lock")
    dev = _pins(ROOT / "requirements" / "dev.lock")
    differ = {
        name: (version, dev.get(name, (None,))[0])
        for name, (version, _) in production.items()
        if dev.get(name, (None,))[0] != version
    }
    assert not differ, f"production.lock and dev.lock disagree: {differ}"


def test_ci_and_the_production_outline_install_from_the_locks():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "--require-hashes -r requirements/dev.lock" in ci
    readme = (ROOT / "README.md").read_text()
    outline = readme.split("## Production outline", 1)[1].split("\n## ", 1)[0]
    assert "--require-hashes -r requirements/production.lock" in outline
