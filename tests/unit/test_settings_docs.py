"""One source for what the settings are: --help, the README's tables and .env.example all agree with the code."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable

import pytest

from alerter import settings as alerter_settings
from publisher import settings as publisher_settings
from shared.config import SettingDoc
from shared.settings_help import markdown_table
from tests.support import REPO

SERVICES: dict[str, tuple[Callable[[], list[SettingDoc]], str]] = {
    "publisher": (publisher_settings.describe, "publisher"),
    "alerter": (alerter_settings.describe, "alerter"),
}


@pytest.mark.parametrize("service", SERVICES)
def test_every_setting_says_what_it_does(service: str) -> None:
    """Each variable a service reads has a help text, and none is read under two descriptions."""
    docs = SERVICES[service][0]()
    assert docs, "the loader read settings"
    assert [d.name for d in docs if not d.help] == []
    assert len({d.name for d in docs}) == len(docs)


@pytest.mark.parametrize("service", SERVICES)
def test_help_lists_every_setting_with_its_default(service: str) -> None:
    """`python -m <service> --help` prints NAME=default and the help text of every setting, and exits 0."""
    describe, module = SERVICES[service]
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60, cwd=REPO, check=False
    )
    assert result.returncode == 0, result.stderr
    flat = " ".join(result.stdout.split())
    for doc in describe():
        assert f"  {doc.name}={doc.default}" in result.stdout, doc.name
        assert " ".join(doc.help.split()) in flat, doc.name


@pytest.mark.parametrize("service", SERVICES)
def test_readme_table_is_the_generated_one(service: str) -> None:
    """The README's settings table of each service is exactly what `make docs` writes from the code."""
    readme = (REPO / "README.md").read_text()
    marker = f"settings:{service}"
    block = re.search(rf"<!-- {marker} -->\n(.*?)\n<!-- /{marker} -->", readme, re.DOTALL)
    assert block is not None, f"README.md has a <!-- {marker} --> block"
    assert block[1] == markdown_table(SERVICES[service][0]()), "README.md is out of date: run `make docs`"


def test_env_example_shows_the_services_own_defaults() -> None:
    """Every `#NAME=value` line of .env.example is that setting's default, so uncommenting one changes nothing
    (a setting unset by default may show an example value instead)."""
    defaults: dict[str, set[str]] = {}
    for describe, _ in SERVICES.values():
        for doc in describe():
            defaults.setdefault(doc.name, set()).add(doc.default)
    shown = re.findall(r"^#([A-Z][A-Z0-9_]*)=(.*)$", (REPO / ".env.example").read_text(), re.MULTILINE)
    checked = [(name, value) for name, value in shown if defaults.get(name, {""}) != {""}]
    assert checked, ".env.example shows some defaults"
    assert [(name, value) for name, value in checked if defaults[name] != {value}] == []
