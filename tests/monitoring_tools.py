"""The real Prometheus and Alertmanager binaries (Debian packages), found on PATH or the test stops with advice.

`make install` installs the packages when it runs as root (scripts/install-monitoring-tools).
Elsewhere a test that needs them is skipped with a line saying what to install, except where
REQUIRE_MONITORING_BINARIES=1 (set by .ci/run): there a missing binary fails the test, so CI never
passes without having run them.
"""

from __future__ import annotations

import os
import shutil

import pytest

PACKAGES = {"prometheus": "prometheus", "promtool": "prometheus",
            "prometheus-alertmanager": "prometheus-alertmanager", "amtool": "prometheus-alertmanager"}


def monitoring_tool(name: str) -> str:
    """The path of `name` (prometheus, promtool, prometheus-alertmanager, amtool); skip or fail when missing."""
    found = shutil.which(name)
    if found is not None:
        return found
    advice = (f"{name} not found: install the Debian package {PACKAGES[name]} "
              f"(`make install` as root does, or `sudo apt-get install prometheus prometheus-alertmanager`)")
    if os.environ.get("REQUIRE_MONITORING_BINARIES") == "1":
        pytest.fail(f"{advice}; REQUIRE_MONITORING_BINARIES=1 forbids skipping", pytrace=False)
    pytest.skip(advice)
