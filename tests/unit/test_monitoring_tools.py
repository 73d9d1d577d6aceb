"""Missing Prometheus/Alertmanager binaries: a skip that says what to install, or a failure where CI demands them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.containers import REPO
from tests.monitoring_tools import monitoring_tool


def test_a_missing_tool_skips_with_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without the binary on PATH, the test is skipped with the Debian package and the install command."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("REQUIRE_MONITORING_BINARIES", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"Debian package prometheus-alertmanager.*apt-get install"):
        monitoring_tool("amtool")


def test_ci_turns_the_skip_into_a_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With REQUIRE_MONITORING_BINARIES=1 a missing binary fails the test instead of skipping it."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("REQUIRE_MONITORING_BINARIES", "1")
    with pytest.raises(pytest.fail.Exception, match="REQUIRE_MONITORING_BINARIES=1 forbids skipping"):
        monitoring_tool("promtool")


def test_a_present_tool_is_found_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An executable of that name on PATH is what the tests run."""
    promtool = tmp_path / "promtool"
    promtool.write_text("#!/bin/sh\n")
    promtool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin")
    assert monitoring_tool("promtool") == str(promtool)


def test_ci_runs_make_test_with_the_tools_required() -> None:
    """.ci/run sets REQUIRE_MONITORING_BINARIES=1 before `make test`, and `make install` installs the packages."""
    script = (REPO / ".ci" / "run").read_text()
    assert script.index("export REQUIRE_MONITORING_BINARIES=1") < script.index("make test")
    makefile = (REPO / "Makefile").read_text()
    assert "install: $(STAMP) $(KAFKA_STAMP) monitoring-tools" in makefile
    installer = (REPO / "scripts" / "install-monitoring-tools").read_text()
    assert "apt-get install -y -qq --no-install-recommends" in installer
    assert "policy-rc.d" in installer, "the packages' daemons must not start on the test machine"
