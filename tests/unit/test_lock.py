"""requirements.lock and requirements-dev.lock: every file pinned by version and sha256, equal to what the tests run."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib.metadata import distribution, distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from tests.containers import REPO

RUNTIME_LOCK = REPO / "requirements.lock"
DEV_LOCK = REPO / "requirements-dev.lock"
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


@dataclass(frozen=True)
class Pin:
    version: str
    hashes: frozenset[str]


def _pins(path: Path) -> dict[str, Pin]:
    """name -> pinned version and hashes, from pip's requirements format (backslash continuations)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pins: dict[str, Pin] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        assert not line.startswith("-"), f"{path.name}: an option line ({line}) ties the lock to one machine"
        requirement = Requirement(line.split(" --hash", 1)[0])
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1, f"{path.name}: {requirement} is not pinned to one version"
        assert specifiers[0].operator == "==", f"{path.name}: {requirement} is not pinned with =="
        pins[canonicalize_name(requirement.name)] = Pin(specifiers[0].version, frozenset(_HASH.findall(line)))
    return pins


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, DEV_LOCK], ids=lambda path: path.name)
def test_every_locked_package_is_pinned_with_its_file_hashes(lock: Path) -> None:
    """Each line pins one version and carries at least one sha256, so `pip install --require-hashes` accepts it."""
    pins = _pins(lock)
    assert pins
    unhashed = sorted(name for name, pin in pins.items() if not pin.hashes)
    assert not unhashed, f"{lock.name}: no hash for {unhashed}; regenerate with scripts/lock"


def test_the_dev_lock_extends_the_runtime_lock_with_the_same_pins() -> None:
    """A package in both files has one version and one set of hashes: the images run what the tests run."""
    runtime, dev = _pins(RUNTIME_LOCK), _pins(DEV_LOCK)
    assert set(runtime) <= set(dev)
    assert {name: runtime[name] for name in runtime} == {name: dev[name] for name in runtime}


def _runtime_requirements() -> set[str]:
    """The project's runtime dependencies, transitively, read from the installed distributions' metadata."""
    pending = [Requirement(r) for r in distribution("gpu-temp-monitor").requires or []]
    seen: set[str] = set()
    while pending:
        requirement = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        if name not in seen:
            seen.add(name)
            pending += [Requirement(r) for r in distribution(name).requires or []]
    return seen


def test_runtime_dependencies_are_locked_at_the_tested_versions() -> None:
    """Every runtime dependency (transitively) is in requirements.lock at the version installed here."""
    runtime = _pins(RUNTIME_LOCK)
    needed = _runtime_requirements()
    assert {"confluent-kafka", "msgspec", "prometheus-client"} <= needed
    for name in needed:
        assert name in runtime, f"{name} is a runtime dependency but not in requirements.lock; run scripts/lock"
        assert distribution(name).version == runtime[name].version, f"{name}: installed and locked versions differ"


def test_the_build_backend_is_locked_for_an_install_without_build_isolation() -> None:
    """setuptools and wheel are locked at versions pyproject's build-system accepts, so nothing unhashed is fetched."""
    build = [Requirement(r) for r in tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]]
    for lock in (RUNTIME_LOCK, DEV_LOCK):
        pins = _pins(lock)
        for requirement in build:
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{lock.name} does not lock the build backend {name}"
            assert SpecifierSet(str(requirement.specifier)).contains(pins[name].version)


def test_this_environment_is_exactly_the_dev_lock() -> None:
    """Every distribution installed here (bar the project and pip) is in requirements-dev.lock, at its version."""
    dev = _pins(DEV_LOCK)
    installed = {str(canonicalize_name(d.metadata["Name"])): d.version for d in distributions()}
    del installed["gpu-temp-monitor"]
    installed.pop("pip", None)
    assert installed == {name: pin.version for name, pin in dev.items()}


def test_make_install_checks_hashes_and_installs_the_project_alone() -> None:
    """`make install` installs the dev lock with --require-hashes, then the editable project with --no-deps."""
    makefile = (REPO / "Makefile").read_text()
    assert "pip install --quiet --require-hashes -r requirements-dev.lock" in makefile
    assert "pip install --quiet --no-deps --no-build-isolation -e ." in makefile
    assert "-c requirements.lock" not in makefile, "nothing installed unhashed"
    assert "--upgrade pip" not in makefile, "nothing installed unhashed"
