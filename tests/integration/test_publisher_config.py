"""Each kind of bad configuration stops the real entry point with exit 2 and one line, before any connection.

No cluster is needed (start-up fails before connecting), so these carry no integration marker.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_publisher import OWN_VARIABLES


def run_publisher(tmp_path: Path, env: dict[str, str], args: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in OWN_VARIABLES}
    return subprocess.run(
        [sys.executable, "-m", "publisher", *args],
        env={**base, "REDPANDA_BROKERS": "127.0.0.1:9", **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"NUM_DEVICES": "0"}, (), "NUM_DEVICES=0: expected an integer >= 1"),
        ({"ABNORMAL_PROBABILITY": "1.5"}, (), "ABNORMAL_PROBABILITY='1.5': expected a number from 0 to 1"),
        ({"INTERVAL_MS": "-5"}, (), "INTERVAL_MS=-5: expected an integer >= 0"),
        ({"REDPANDA_BROKERS": " , "}, (), "REDPANDA_BROKERS=' , ': expected a comma-separated list of host:port"),
        ({"SIMULATOR_SEED": "abc"}, (), "SIMULATOR_SEED='abc': expected an integer from 0 to 3402823669"),
        ({"LOG_LEVEL": "loud"}, (), "LOG_LEVEL='loud': expected one of debug, info, warning, error"),
        (
            {},
            ("--bogus",),
            "unrecognized arguments: --bogus (usage: gpu-temp-publisher [-h] [--ticks N] [--stdout]; see --help)",
        ),
        ({}, ("--ticks", "zero"), "argument --ticks: expected an integer >= 1, got 'zero' (usage: gpu-temp-publisher"),
    ],
)
def test_bad_value_exits_2_with_one_line(
    tmp_path: Path, env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    """A malformed or out-of-range value or an unknown option: exit code 2, one line naming it, no traceback."""
    result = run_publisher(tmp_path, env, args)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"gpu-temp-publisher: configuration error: {message}")


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    """Values in a .env file of the working directory count like environment variables."""
    (tmp_path / ".env").write_text("NUM_DEVICES=-2\n")
    result = run_publisher(tmp_path, {})
    assert result.returncode == 2
    expected = "gpu-temp-publisher: configuration error: NUM_DEVICES=-2: expected an integer >= 1"
    assert result.stderr.splitlines() == [expected]


def test_metrics_port_in_use_exits_2(tmp_path: Path) -> None:
    """A METRICS_PORT that another process holds is reported as a configuration error, not a traceback."""
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_publisher(tmp_path, {"METRICS_PORT": str(port)})
    assert result.returncode == 2
    expected = f"METRICS_PORT={port}: expected a free port (Address already in use)"
    assert result.stderr.splitlines() == [f"gpu-temp-publisher: configuration error: {expected}"]
