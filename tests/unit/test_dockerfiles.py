"""Dockerfile.publisher and Dockerfile.alerter: linted by hadolint, read by BuildKit's parser."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from alerter.settings import DEFAULT_METRICS_PORT as ALERTER_PORT
from publisher.settings import DEFAULT_METRICS_PORT as PUBLISHER_PORT
from tests.containers import REPO, Instruction, dockerfile_instructions, final_stage, image_command, tool

DOCKERFILES = {
    "Dockerfile.publisher": ("gpu-temp-publisher", str(PUBLISHER_PORT)),
    "Dockerfile.alerter": ("gpu-temp-alert", str(ALERTER_PORT)),
}


def _instructions(name: str) -> list[Instruction]:
    return dockerfile_instructions(REPO / name)


def _env(instructions: list[Instruction]) -> dict[str, str]:
    """ENV values set by these instructions (BuildKit gives key, value pairs)."""
    env: dict[str, str] = {}
    for instruction in instructions:
        if instruction.cmd == "ENV":
            pairs = instruction.value
            env.update({pairs[i]: pairs[i + 1].strip('"') for i in range(0, len(pairs), 2)})
    return env


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_finds_nothing(name: str) -> None:
    """hadolint reports no finding at any level (style included) on the Dockerfile."""
    result = subprocess.run([tool("hadolint"), "--no-color", "--format", "json", "--failure-threshold", "style",
                             "--disable-ignore-pragma", str(REPO / name)], capture_output=True, text=True, timeout=60)
    assert json.loads(result.stdout or "[]") == [], result.stdout
    assert result.returncode == 0, result.stderr


def test_hadolint_is_a_real_linter(tmp_path: Path) -> None:
    """The pinned hadolint flags an unpinned base image and a shell-form entrypoint (so a pass means something)."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nENTRYPOINT gpu-temp-alert\n")
    result = subprocess.run([tool("hadolint"), "--no-color", "--format", "json", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert {finding["code"] for finding in json.loads(result.stdout)} >= {"DL3006", "DL3025"}


@pytest.mark.parametrize("name", DOCKERFILES)
def test_multi_stage_on_a_pinned_slim_python(name: str) -> None:
    """Two stages from one slim Python base pinned by version and digest; only the venv crosses over."""
    instructions = _instructions(name)
    args = dict(i.value[0].split("=", 1) for i in instructions if i.cmd == "ARG")
    base = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+@sha256:[0-9a-f]{64}", base), base
    froms = [i.value for i in instructions if i.cmd == "FROM"]
    assert froms == [("${PYTHON_IMAGE}", "AS", "build"), ("${PYTHON_IMAGE}",)]
    final_copies = [i for i in final_stage(instructions) if i.cmd == "COPY"]
    assert [(c.flags, c.value) for c in final_copies] == [(("--from=build",), ("/opt/venv", "/opt/venv"))], \
        "the final image gets the installed environment only: no sources, no pip cache, no build tools"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_installs_the_hashed_lock_then_the_project_without_its_build_backend(name: str) -> None:
    """pip installs requirements.lock with --require-hashes (cache on a build mount only), then the project alone."""
    runs = [i for i in _instructions(name) if i.cmd == "RUN" and "pip install" in i.value[0]]
    assert len(runs) == 2
    dependencies, project = runs
    assert "pip install --require-hashes -r requirements.lock" in dependencies.value[0]
    assert "--no-deps" not in dependencies.value[0], "pip must check that the lock pins every dependency"
    assert "--mount=type=cache,target=/root/.cache/pip" in dependencies.flags
    assert "pip install --no-cache-dir --no-deps --no-build-isolation ." in project.value[0]
    assert "pip uninstall --yes setuptools wheel" in project.value[0]
    copies = [i.value for i in _instructions(name) if i.cmd == "COPY" and not i.flags]
    assert copies == [("requirements.lock", "./"), (".", ".")], "the dependency layer only changes with the lock"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_final_image_runs_unprivileged_unbuffered_with_exec_entrypoint(name: str) -> None:
    """Non-root user, PYTHONUNBUFFERED=1, the service's console script as exec-form ENTRYPOINT."""
    script, port = DOCKERFILES[name]
    final = final_stage(_instructions(name))
    users = [i.value[0] for i in final if i.cmd == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("0", "root")
    env = _env(final)
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["METRICS_PORT"] == port, "the service's own default, so a probe and a scrape find it"
    assert env["METRICS_HOST"] == "0.0.0.0", "reachable from the container network (Prometheus), not loopback only"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert image_command(REPO / name) == [script]
    assert [i.value for i in final if i.cmd == "EXPOSE"] == [(port,)]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_healthcheck_probes_healthz_on_the_metrics_port(name: str) -> None:
    """HEALTHCHECK is exec form and asks /healthz on METRICS_PORT with the image's own Python (no curl)."""
    checks = [i for i in final_stage(_instructions(name)) if i.cmd == "HEALTHCHECK"]
    assert len(checks) == 1
    check = checks[0]
    assert check.json
    assert check.value[:3] == ("CMD", "python", "-c")
    assert "/healthz" in check.value[3]
    assert "METRICS_PORT" in check.value[3]
    assert any(flag.startswith("--timeout=") for flag in check.flags)


def test_healthcheck_probe_code_is_valid_python() -> None:
    """The one-liner in the HEALTHCHECK compiles (a typo there would mark every container unhealthy)."""
    for name in DOCKERFILES:
        check = next(i for i in _instructions(name) if i.cmd == "HEALTHCHECK")
        compile(check.value[3], f"{name}:HEALTHCHECK", "exec")


def test_dockerignore_admits_exactly_the_installable_project() -> None:
    """The build context is a whitelist: the packages pyproject.toml installs and the files their install reads.

    So .env and .venv never reach a build, and a package added to pyproject.toml but not admitted here fails.
    """
    lines = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*", "exclude everything, then admit"
    admitted = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert admitted == packages | {"pyproject.toml", pyproject["project"]["readme"], "requirements.lock"}
    assert all((REPO / package / "__init__.py").is_file() for package in packages)
