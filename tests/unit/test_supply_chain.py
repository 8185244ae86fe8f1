"""The dependencies are locked with their hashes (`make lock`), and the locks agree with
pyproject.toml: a version changed there without `make lock` fails here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_ENTRY = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+)((?:\s*\\\s*\n\s*--hash=sha256:[0-9a-f]{64})+)", re.M)


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock(path: str) -> dict[str, str]:
    text = (ROOT / path).read_text()
    entries = {_name(m.group(1)): m.group(2) for m in _ENTRY.finditer(text)}
    pinned = re.findall(r"^[A-Za-z0-9_.\-]+==", text, re.M)
    assert len(entries) == len(pinned), f"{path}: every pinned dependency has its hashes"
    return entries


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        match = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^;\s]+)", requirement)
        assert match, f"pyproject.toml pins every dependency exactly: {requirement}"
        pins[_name(match.group(1))] = match.group(2)
    return pins


def test_the_locks_hold_every_dependency_of_pyproject_at_its_version_with_hashes():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime, test = _pins(project["dependencies"]), _pins(project["optional-dependencies"]["test"])
    production, development = _lock("requirements.lock"), _lock("requirements-dev.lock")
    for name, version in runtime.items():
        assert production.get(name) == version, f"requirements.lock: {name} {production.get(name)} != {version}"
    for name, version in (runtime | test).items():
        assert development.get(name) == version, f"requirements-dev.lock: {name} {development.get(name)} != {version}"
    for name in ("pytest", "ruff", "mypy", "testcontainers", "playwright", "schemathesis"):
        assert name in test and name not in production, f"{name} is a test tool: not in the image"
    for name, version in production.items():  # the image runs what the tests ran
        assert development.get(name) == version, f"{name}: {version} in the image, {development.get(name)} tested"


def test_the_image_and_the_virtualenv_install_by_hash():
    assert "--require-hashes -r requirements.lock" in (ROOT / "deploy" / "Dockerfile").read_text()
    assert "--require-hashes -r requirements-dev.lock" in (ROOT / "Makefile").read_text()
