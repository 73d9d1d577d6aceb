"""Log lines carry their identifiers in both formats."""

from __future__ import annotations

import json
import logging

import pytest

from shared.logs import configure_logging


@pytest.fixture(autouse=True)
def _restore_root_logger():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_format_is_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    """LOG_FORMAT=json gives one parseable object with level, event and the extra fields."""
    configure_logging("info", "json")
    logging.getLogger("alerter").warning("bad record skipped", extra={"partition": 3, "offset": 42})
    line = capsys.readouterr().err.strip()
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "warning"
    assert entry["event"] == "bad record skipped"
    assert entry["logger"] == "alerter"
    assert (entry["partition"], entry["offset"]) == (3, 42)
    assert entry["time"].endswith("Z")


def test_text_format_appends_fields(capsys: pytest.CaptureFixture[str]) -> None:
    """The readable format keeps the message first and appends key=value pairs."""
    configure_logging("info", "text")
    logging.getLogger("publisher").info("Published HIGH TEMP", extra={"device": "gpu-1"})
    line = capsys.readouterr().err.strip()
    assert "INFO" in line
    assert "publisher: Published HIGH TEMP" in line
    assert line.endswith("device=gpu-1")


def test_level_filters(capsys: pytest.CaptureFixture[str]) -> None:
    """LOG_LEVEL=warning hides info lines."""
    configure_logging("warning", "text")
    logging.getLogger("x").info("hidden")
    logging.getLogger("x").warning("shown")
    err = capsys.readouterr().err
    assert "hidden" not in err
    assert "shown" in err


def test_throttle_allows_once_per_interval_and_counts_the_rest() -> None:
    """Repeats within the interval are suppressed and counted; the next allowed one reports the count."""
    from shared.logs import Throttle  # noqa: PLC0415

    now = [0.0]
    throttle = Throttle(10.0, clock=lambda: now[0])
    assert throttle.allow("broker-1") == 0
    assert throttle.allow("broker-1") is None
    assert throttle.allow("broker-2") == 0, "keys are independent"
    now[0] = 5.0
    assert throttle.allow("broker-1") is None
    now[0] = 10.0
    assert throttle.allow("broker-1") == 2


def test_debug_level_keeps_http_request_lines_out(capsys: pytest.CaptureFixture[str]) -> None:
    """Even at LOG_LEVEL=debug, urllib3's request lines (whose path is the webhook secret) are not logged."""
    configure_logging("debug", "text")
    logging.getLogger("urllib3.connectionpool").debug('"POST /services/T0/B0/SECRETTOKEN HTTP/1.1" 200 2')
    logging.getLogger("alerter").debug("own debug line")
    err = capsys.readouterr().err
    assert "SECRETTOKEN" not in err
    assert "own debug line" in err


def test_text_format_cannot_be_split_by_untrusted_text(capsys: pytest.CaptureFixture[str]) -> None:
    """A device id with a newline or escape code stays on its one log line, escaped."""
    configure_logging("info", "text")
    evil = "gpu-1\n2026-11-25 00:00:00 INFO forged: all good\x1b[2J"
    logging.getLogger("alerter").warning("HIGH TEMPERATURE ALERT: Device %s", evil, extra={"device": evil})
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "gpu-1\\n2026" in lines[0]
    assert "\\x1b[2J" in lines[0]
