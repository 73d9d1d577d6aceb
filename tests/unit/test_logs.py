"""Log lines carry their identifiers in both formats, and never a secret or a character that hides or forges text."""

from __future__ import annotations

import json
import logging
import sys
import threading
import unicodedata
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.logs import REDACTED, configure_logging, redact, register_secret
from shared.text import UNSAFE_CATEGORIES

HOOK_URL = "https://hooks.slack.com/services/T0LOGS/B0LOGS/logstokenlogstokenlogs"
HOOK_PATH = "/services/T0LOGS/B0LOGS/logstokenlogstokenlogs"


@pytest.fixture(autouse=True)
def _restore_root_logger():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    hooks = sys.excepthook, threading.excepthook
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks
    logging.captureWarnings(False)


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


def _unsafe(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c) in UNSAFE_CATEGORIES]


def _fail_posting() -> None:
    raise ValueError(f"cannot post to {HOOK_URL}")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_registered_secret_url_never_reaches_a_line(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The URL and its path are blanked wherever they appear: message, arguments, extra fields, exception text,
    and whatever library logged them (urllib3 rebuilds URLs, so the path alone must go too)."""
    register_secret(HOOK_URL)
    configure_logging("info", fmt)
    logging.getLogger("urllib3.connection").warning("Failed to parse headers (url=%s): broken", HOOK_URL)
    logging.getLogger("urllib3.connectionpool").warning("rebuilt url=https://HOOKS.slack.com:443%s", HOOK_PATH)
    logging.getLogger("alerter").warning("posting", extra={"url": HOOK_URL, "nested": [HOOK_PATH]})
    try:
        _fail_posting()
    except ValueError:
        logging.getLogger("alerter").exception("failed")
    err = capsys.readouterr().err
    assert "logstoken" not in err
    assert "T0LOGS" not in err
    assert err.count(REDACTED) >= 5
    assert "Failed to parse headers (url=********)" in err


def test_secret_redaction_leaves_other_text_and_short_paths_alone() -> None:
    """Only the secret is blanked: a URL's short path ("/") is too common to blank, other text stays as it is."""
    register_secret("http://127.0.0.1:3999/")
    assert redact("GET / HTTP/1.1 from 127.0.0.1") == "GET / HTTP/1.1 from 127.0.0.1"
    assert redact("posting to http://127.0.0.1:3999/ now") == "posting to ******** now"


def test_percent_encoded_secret_path_is_blanked_too() -> None:
    """A library that logs the decoded (or encoded) form of the path leaks nothing either."""
    register_secret("https://hooks.example.com/services/T1/B1/to%20ken%20token%20token")
    assert "token" not in redact("url=/services/T1/B1/to ken token token")
    assert "token" not in redact("url=/services/T1/B1/to%20ken%20token%20token")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_uncaught_exception_in_a_thread_is_one_redacted_record(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A thread that dies goes through the handler (formatted, redacted), not Python's raw stderr print."""
    register_secret(HOOK_URL)
    configure_logging("info", fmt)

    def die() -> None:
        raise RuntimeError(f"lost {HOOK_URL}")

    thread = threading.Thread(target=die, name="worker")
    thread.start()
    thread.join()
    err = capsys.readouterr().err
    assert "logstoken" not in err
    assert "uncaught RuntimeError in thread worker" in err
    if fmt == "json":
        assert [json.loads(line)["level"] for line in err.splitlines()] == ["critical"]
    else:
        assert all(line.startswith("  | ") for line in err.splitlines()[1:])


def test_python_warnings_go_through_the_handler(capsys: pytest.CaptureFixture[str]) -> None:
    """A library's warning (urllib3's InsecureRequestWarning, say) is a JSON line too, not a raw stderr print."""
    configure_logging("info", "json")
    warnings.warn(f"insecure request to {HOOK_URL}", UserWarning, stacklevel=1)
    [line] = capsys.readouterr().err.splitlines()
    entry = json.loads(line)
    assert entry["logger"] == "py.warnings"
    assert "logstoken" not in line


def test_a_line_that_cannot_be_written_costs_one_line_without_its_content(capsys: pytest.CaptureFixture[str]) -> None:
    """When formatting fails, the handler says so in one line and repeats neither the message nor its arguments."""
    configure_logging("info", "text")
    logging.getLogger("alerter").warning("%d devices at %s", "not a number", HOOK_URL)
    err = capsys.readouterr().err
    assert err.splitlines() == ["logging error: TypeError while writing a record of 'alerter'"]


HOSTILE = ["\u202e", "\u200b", "\u200d", "\u2028", "\u2029", "\x85", "\x9b", "\r", "\n", "\x1b", "\ud800", "\ufeff"]
hostile_text = st.lists(st.one_of(st.text(max_size=5), st.sampled_from(HOSTILE)), max_size=8).map("".join)


@settings(max_examples=200, deadline=None)
@given(device=hostile_text)
def test_text_log_line_stays_one_visible_line(device: str) -> None:
    """Whatever a device id holds (newlines, U+2028/2029, bidi overrides, zero-width or C1 characters, lone
    surrogates), a text log line stays one line with nothing invisible or line-breaking in it."""
    from shared.logs import TextFormatter  # noqa: PLC0415

    record = logging.LogRecord("alerter", logging.WARNING, __file__, 1, "ALERT: Device %s", (device,), None)
    record.device = device
    line = TextFormatter().format(record)
    assert len(line.splitlines()) == 1
    assert _unsafe(line) == []
    line.encode("utf-8")  # no lone surrogate left: the stream can always write it


@settings(max_examples=200, deadline=None)
@given(device=hostile_text)
def test_json_log_line_stays_one_line_with_visible_values(device: str) -> None:
    """In JSON logs the same text is escaped inside the values, so a log viewer shows it as it is, one line."""
    from shared.logs import JsonFormatter  # noqa: PLC0415

    record = logging.LogRecord("alerter", logging.WARNING, __file__, 1, "ALERT: Device %s", (device,), None)
    record.device = device
    line = JsonFormatter().format(record)
    assert len(line.splitlines()) == 1
    entry = json.loads(line)
    assert _unsafe(entry["event"]) == []
    assert _unsafe(entry["device"]) == []
    assert entry["event"].startswith("ALERT: Device ")


def test_bidi_override_is_shown_not_applied(capsys: pytest.CaptureFixture[str]) -> None:
    """A host name that would display reversed, or hide a zero-width space, is printed with visible escapes."""
    configure_logging("info", "text")
    logging.getLogger("alerter").warning("host %s", "gpu\u202e1-\u200bnode\x85")
    assert "host gpu\\u202e1-\\u200bnode\\x85" in capsys.readouterr().err
