"""The container files as Docker would read them, for tests that run without a Docker engine.

Compose files go through the real Compose CLI (`docker-compose config`), which validates them
against the Compose Specification and resolves interpolation, merges and defaults; Dockerfiles go
through BuildKit's own parser. Tests then assert on what Docker would actually do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dockerfile
import promql_parser
from prometheus_client.metrics_core import Metric

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
COMPOSE_FILE = REPO / "docker-compose.yml"
HA_FILE = REPO / "docker-compose.ha.yml"
ENV_EXAMPLE = REPO / ".env.example"


def tool(name: str) -> str:
    """A binary installed into the virtual environment by a dev dependency (or on PATH)."""
    candidate = BIN / name
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: run `make install` (it is a dev dependency)")
    return found


def run_compose(*args: str, files: tuple[Path, ...] = (COMPOSE_FILE,), env_file: Path = ENV_EXAMPLE,
                profiles: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """`docker-compose -f ... --env-file ... ARGS` with none of the caller's variables leaking in."""
    command = [tool("docker-compose"), "--project-directory", str(REPO), "--env-file", str(env_file)]
    for file in files:
        command += ["-f", str(file)]
    for profile in profiles:
        command += ["--profile", profile]
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run([*command, *args], capture_output=True, text=True, env=environment, timeout=60)


def env_file(path: Path, **values: str) -> Path:
    """A .env at `path`: .env.example with `values` appended (a later line wins, as in Compose)."""
    path.write_text(ENV_EXAMPLE.read_text() + "".join(f"{key}={value}\n" for key, value in values.items()))
    return path


def compose_config(*, files: tuple[Path, ...] = (COMPOSE_FILE,), env_file: Path = ENV_EXAMPLE,
                   profiles: tuple[str, ...] = ()) -> dict[str, Any]:
    """The validated, fully resolved compose model; fails with Compose's own message if invalid."""
    result = run_compose("config", "--format", "json", files=files, env_file=env_file, profiles=profiles)
    if result.returncode != 0:
        raise AssertionError(f"docker-compose config rejected {[f.name for f in files]}: {result.stderr.strip()}")
    config: dict[str, Any] = json.loads(result.stdout)
    return config


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction as BuildKit parses it."""

    cmd: str
    value: tuple[str, ...]
    flags: tuple[str, ...]
    json: bool
    original: str


def dockerfile_instructions(path: Path) -> list[Instruction]:
    return [
        Instruction(c.cmd.upper(), tuple(c.value), tuple(c.flags), bool(c.json), c.original)
        for c in dockerfile.parse_file(str(path))
    ]


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    """Instructions from the last FROM on: what the shipped image is made of."""
    last_from = max(i for i, instruction in enumerate(instructions) if instruction.cmd == "FROM")
    return instructions[last_from:]


def image_command(path: Path) -> list[str]:
    """ENTRYPOINT + CMD of the final image, as Docker runs them (both must be exec form)."""
    entrypoint: list[str] = []
    cmd: list[str] = []
    cmd_set_here = False
    for instruction in final_stage(dockerfile_instructions(path)):
        if instruction.cmd in ("ENTRYPOINT", "CMD"):
            if not instruction.json:
                raise AssertionError(f"{path.name}: {instruction.cmd} is in shell form: {instruction.original}")
            if instruction.cmd == "ENTRYPOINT":
                entrypoint = list(instruction.value)
                if not cmd_set_here:
                    cmd = []  # ENTRYPOINT drops the CMD inherited from the base image (python's "python3")
            else:
                cmd, cmd_set_here = list(instruction.value), True
    if not entrypoint:
        raise AssertionError(f"{path.name}: the final stage has no ENTRYPOINT")
    return entrypoint + cmd


DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "gpu-temperature.json"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


def queryable_names(families: Iterable[Metric]) -> set[str]:
    """The series names PromQL can select for these metric families (counters end in _total, and so on).

    Works from the families' names and types, so a labelled metric that has seen no traffic yet counts too.
    """
    names: set[str] = set()
    for family in families:
        suffixes = _SUFFIXES.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
        names |= {sample.name for sample in family.samples}
    return names


def dashboard_queries(path: Path = DASHBOARD) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel, rows' nested panels included."""
    dashboard = json.loads(path.read_text())
    queries: list[tuple[str, str]] = []
    pending = list(dashboard["panels"])
    while pending:
        panel = pending.pop(0)
        pending += panel.get("panels", [])
        queries += [(panel["title"], target["expr"]) for target in panel.get("targets", [])]
    return queries


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects, from a real PromQL parse ($__rate_interval read as 1m)."""
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr.replace("$__rate_interval", "1m")), visit)
    return names


# The lines the README's Docker quick start quotes; the entrypoint test finds them in the real output.
HIGH_TEMP_LINE = r"Published HIGH TEMP: Device \S+ - \d+\.\d{2}°C"
ALERT_LINE = r"HIGH TEMPERATURE ALERT: Device \S+ - \d+\.\d{2}°C exceeds threshold of 150\.00°C"


def readme_section(title: str) -> str:
    """The README's `## title` section, up to the next second-level heading."""
    text = (REPO / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]
